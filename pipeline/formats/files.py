"""Finding input files, reading their bytes and handing them to the reader their suffix names.

Every problem becomes a Rejected, never an exception: a file's failure is its dead letter, not its job's.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from pipeline.errors import InputError, Reason, as_input_error
from pipeline.formats.common import MAX_EXPANSION, check_zip, decode
from pipeline.formats.epub import read_epub
from pipeline.formats.image import IMAGE_SUFFIXES, read_image
from pipeline.formats.mail import read_eml
from pipeline.formats.odf import read_ods, read_odt
from pipeline.formats.office import read_docx, read_pptx, read_rtf, read_xlsx
from pipeline.formats.pdf import read_pdf
from pipeline.formats.records import read_csv, read_json, read_jsonl
from pipeline.types import RawDocument, Rejected

# One document each, from bytes; the archive formats are checked as zips first (parts present, size unpacked).
_BINARY_READERS: dict[str, Callable[[bytes, str], RawDocument]] = {
    ".pdf": read_pdf,
    ".docx": read_docx,
    ".pptx": read_pptx,
    ".ods": read_ods,
    ".odt": read_odt,
    ".epub": read_epub,
    ".rtf": read_rtf,
    **dict.fromkeys(IMAGE_SUFFIXES, read_image),
}
_OOXML_PARTS = ("[Content_Types].xml",)
_ODF_PARTS = ("content.xml",)
_ZIP_PARTS = {
    ".docx": _OOXML_PARTS,
    ".pptx": _OOXML_PARTS,
    ".xlsx": _OOXML_PARTS,
    ".xlsm": _OOXML_PARTS,
    ".ods": _ODF_PARTS,
    ".odt": _ODF_PARTS,
    ".epub": ("META-INF/container.xml",),
}
_TEXT_TYPES = {".txt": "txt", ".md": "md", ".html": "html", ".htm": "html"}
_RECORD_READERS = {".json": read_json, ".jsonl": read_jsonl, ".ndjson": read_jsonl, ".csv": read_csv, ".tsv": read_csv}
_WORKBOOKS = frozenset({".xlsx", ".xlsm"})  # a table of records, or one document (read_xlsx); macros are not read
RECORD_SUFFIXES = frozenset({*_RECORD_READERS, *_WORKBOOKS})  # files that may hold many items, the others one

SUPPORTED_SUFFIXES = frozenset({*_BINARY_READERS, *_TEXT_TYPES, *RECORD_SUFFIXES, ".eml"})

_MD_TITLE = re.compile(r"#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*")
_FENCE = re.compile(r"[ \t]{0,3}(```|~~~)")


def iter_files(paths: list[Path]) -> Iterator[Path]:
    """Files named or under named folders, sorted, hidden ones skipped; unsupported ones too. Symlinked folders
    are followed, and each folder is walked once however many links lead to it (a link loop ends)."""
    seen: set[tuple[int, int]] = set()
    for path in paths:
        path = Path(path)
        if not path.is_dir():
            yield path
            continue
        yield from _walk(path, seen)


def _walk(folder: Path, seen: set[tuple[int, int]]) -> Iterator[Path]:
    # Files and folders sorted together, so the order is the one `find -L | sort` would give.
    try:
        info = folder.stat()
        if (info.st_dev, info.st_ino) in seen:
            return
        seen.add((info.st_dev, info.st_ino))
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return  # vanished or unreadable folder: nothing to ingest from it
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if _is_folder(entry):
            yield from _walk(Path(entry.path), seen)
        else:
            yield Path(entry.path)


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # through a symlink too
    except OSError:
        return False  # a link that cannot be followed is read as a file, and becomes its dead letter


def read_path(path: Path, max_bytes: int, base: Path | None = None) -> Iterator[RawDocument | Rejected]:
    """Yield the records of one file. `base` is accepted for callers but unused: sources
    are absolute paths so that a document keeps its identity whatever the working dir."""
    del base
    path = Path(path)
    source = source_of(path)
    suffix = path.suffix.lower()
    try:
        if suffix not in SUPPORTED_SUFFIXES:
            raise InputError(Reason.UNSUPPORTED_TYPE, f"unsupported file type {suffix or '(none)'!r}")
        yield from _read_data(_read_bytes(path, max_bytes), source, suffix, max_bytes, 0)
    except Exception as exc:  # noqa: BLE001 - whatever a reader raises is this file's dead letter, never the job's
        yield _rejected(source, exc)


def source_of(path: Path) -> str:
    """The document source of a file: its resolved absolute path, or the absolute path as given when it cannot
    be resolved (a dangling link or a link loop), so that its dead letter names the file the user has."""
    try:
        return str(path.resolve(strict=True))
    except (OSError, RuntimeError):  # Python 3.11 raises RuntimeError for a symlink loop
        return str(path.absolute())


def _read_attachment(
    data: bytes, source: str, suffix: str, depth: int, max_bytes: int
) -> Iterator[RawDocument | Rejected]:
    """An e-mail attachment, read as a file of its suffix would be; its failure is its own dead letter."""
    try:
        if not data:
            raise InputError(Reason.EMPTY, "attachment is 0 bytes")
        yield from _read_data(data, source, suffix, max_bytes, depth)
    except Exception as exc:  # noqa: BLE001 - as in read_path: the attachment's dead letter, not the message's
        yield _rejected(source, exc)


def _rejected(source: str, exc: Exception) -> Rejected:
    error = as_input_error(exc)
    return Rejected(source=source, stage="read", reason=error.reason.value, detail=error.message)


def _read_data(data: bytes, source: str, suffix: str, max_bytes: int, depth: int) -> Iterator[RawDocument | Rejected]:
    if suffix in _ZIP_PARTS:
        check_zip(data, suffix[1:].upper(), _ZIP_PARTS[suffix], MAX_EXPANSION * max_bytes)
    if suffix in _BINARY_READERS:
        yield _BINARY_READERS[suffix](data, source)
        return
    if suffix in _WORKBOOKS:
        yield from read_xlsx(data, source)
        return
    if suffix == ".eml":
        attachment = partial(_read_attachment, max_bytes=max_bytes)
        yield from read_eml(data, source, depth, attachment, SUPPORTED_SUFFIXES)
        return
    text = decode(data)
    if not text.strip():
        raise InputError(Reason.EMPTY, "file holds only whitespace")
    if suffix in _RECORD_READERS:
        yield from _RECORD_READERS[suffix](text, source)
        return
    ctype = _TEXT_TYPES[suffix]
    yield RawDocument(
        source=source,
        body=text,
        content_type=ctype,
        is_markup=ctype == "html",
        title=_md_title(text) if ctype == "md" else None,
    )


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise InputError(Reason.NOT_FOUND, "not a regular file")
        # Size is checked before reading so that a huge upload never lands in memory.
        if st.st_size > max_bytes:
            raise InputError(Reason.TOO_LARGE, f"file is {st.st_size} bytes, limit is {max_bytes}")
        if st.st_size == 0:
            raise InputError(Reason.EMPTY, "file is 0 bytes")
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)  # a file still being written may have grown since its stat
        if len(data) > max_bytes:
            raise InputError(Reason.TOO_LARGE, f"file grew past the limit of {max_bytes} bytes while read")
        return data
    except FileNotFoundError:
        raise InputError(Reason.NOT_FOUND, "file does not exist") from None
    except OSError as exc:
        # No better code exists for an unreadable file; the detail says what happened.
        raise InputError(Reason.NOT_FOUND, f"cannot read file: {exc.strerror or exc}") from None


def _md_title(text: str) -> str | None:
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (m := _MD_TITLE.fullmatch(line)):
            return m.group(1).strip()
    return None
