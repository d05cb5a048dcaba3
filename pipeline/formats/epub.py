"""EPUB 2 and 3: the spine's XHTML documents in reading order, as text, with the package's Dublin Core metadata.

Read with zipfile and lxml (both already here): an EPUB is a zip with a container file naming the package
document, whose spine lists the chapters. EbookLib would add an AGPL dependency for what is this much code.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from urllib.parse import unquote

from pipeline.errors import InputError, Reason
from pipeline.formats.common import MALFORMED, as_utc, corrupt, markup_to_text, parse_xml, properties, text_or_none
from pipeline.types import RawDocument

_CONTAINER_NS = "{urn:oasis:names:tc:opendocument:xmlns:container}"
_OPF_NS = "{http://www.idpf.org/2007/opf}"
_DC_NS = "{http://purl.org/dc/elements/1.1/}"
_ENC_NS = "{http://www.w3.org/2001/04/xmlenc#}"
_CHAPTER_TYPES = ("application/xhtml+xml", "text/html")


def read_epub(data: bytes, source: str) -> RawDocument:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            rootfile = parse_xml(archive.read("META-INF/container.xml")).find(f".//{_CONTAINER_NS}rootfile")
            if rootfile is None or not rootfile.get("full-path"):
                raise InputError(Reason.CORRUPT_FILE, "EPUB container names no package document")
            opf_path = rootfile.get("full-path")
            package = parse_xml(archive.read(opf_path))
            chapters = _chapters(archive, package, posixpath.dirname(opf_path))
        dc = {name: _dc_all(package, name) for name in ("title", "creator", "subject", "language", "date")}
    except MALFORMED as exc:
        raise corrupt("EPUB", exc) from None
    texts = [markup_to_text(chapter) for chapter in chapters]
    body = "\n\n".join(text for text in texts if text)
    if not body:
        raise InputError(Reason.EMPTY, f"EPUB has {len(chapters)} chapter(s) but no text")
    return RawDocument(
        source=source,
        body=body,
        content_type="epub",
        title=text_or_none(next(iter(dc["title"]), None)),
        published=as_utc(next(iter(dc["date"]), None)),
        metadata=properties(
            author=", ".join(dc["creator"]),
            subject=", ".join(dc["subject"]),
            language=next(iter(dc["language"]), None),
            chapters=len(chapters),
        ),
    )


def _chapters(archive: zipfile.ZipFile, package, base: str) -> list[bytes]:
    """The XHTML of each spine item in order; the navigation document (a table of contents) is left out."""
    manifest = {item.get("id"): item for item in package.iterfind(f"{_OPF_NS}manifest/{_OPF_NS}item")}
    encrypted = _encrypted(archive)
    chapters, locked = [], 0
    for ref in package.iterfind(f"{_OPF_NS}spine/{_OPF_NS}itemref"):
        item = manifest.get(ref.get("idref"))
        if item is None or item.get("media-type") not in _CHAPTER_TYPES or not item.get("href"):
            continue
        if "nav" in (item.get("properties") or "").split():
            continue
        path = posixpath.normpath(posixpath.join(base, unquote(item.get("href").split("#")[0])))
        if path in encrypted:
            locked += 1
            continue
        chapters.append(archive.read(path))
    if locked and not chapters:
        raise InputError(Reason.ENCRYPTED, f"EPUB's {locked} chapter(s) are encrypted (DRM)")
    return chapters


def _encrypted(archive: zipfile.ZipFile) -> set[str]:
    """Parts listed in META-INF/encryption.xml: DRM, or obfuscated fonts (which are not chapters)."""
    if "META-INF/encryption.xml" not in archive.namelist():
        return set()
    root = parse_xml(archive.read("META-INF/encryption.xml"))
    return {unquote(ref.get("URI", "")) for ref in root.iter(f"{_ENC_NS}CipherReference")}


def _dc_all(package, name: str) -> list[str]:
    values = (element.text for element in package.iterfind(f"{_OPF_NS}metadata/{_DC_NS}{name}"))
    return [value.strip() for value in values if value and value.strip()]
