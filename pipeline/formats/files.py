"""Finding input files, reading their bytes and handing them to the reader their suffix names.

Every problem becomes a Rejected, never an exception: a file's failure is its dead letter, not its job's.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from functools import partial
from itertools import islice
from pathlib import Path, PurePosixPath

from pipeline.errors import InputError, Reason, as_input_error
from pipeline.formats.archive import ARCHIVE_SUFFIXES, archive_kind, inner_name, read_archive
from pipeline.formats.common import MAX_EXPANSION, check_zip, decode
from pipeline.formats.epub import read_epub
from pipeline.formats.image import IMAGE_SUFFIXES, read_image
from pipeline.formats.mail import count_mbox, read_eml, read_mbox, read_mhtml
from pipeline.formats.markdown import read_markdown
from pipeline.formats.notes import read_notebook, read_subtitles
from pipeline.formats.odf import read_odp, read_ods, read_odt
from pipeline.formats.office import read_docx, read_pptx, read_rtf, read_xls, read_xlsx
from pipeline.formats.pdf import read_pdf
from pipeline.formats.records import read_csv, read_json, read_jsonl
from pipeline.types import MAX_SOURCE_BYTES, RawDocument, Rejected, bounded_source, storable

# Office Open XML: documents, macro-enabled documents, templates (and slide shows), read alike; macros are not read
_WORD_SUFFIXES = (".docx", ".docm", ".dotx", ".dotm")
_POWERPOINT_SUFFIXES = (".pptx", ".pptm", ".ppsx", ".ppsm", ".potx", ".potm")
_EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xltx", ".xltm")
# One document each, from bytes; the archive formats are checked as zips first (parts present, size unpacked).
_BINARY_READERS: dict[str, Callable[[bytes, str], RawDocument]] = {
    ".pdf": read_pdf,
    **dict.fromkeys(_WORD_SUFFIXES, read_docx),
    **dict.fromkeys(_POWERPOINT_SUFFIXES, read_pptx),
    **dict.fromkeys((".ods", ".ots"), read_ods),  # a template (.ots, .ott, .otp) holds what its document would
    **dict.fromkeys((".odt", ".ott"), read_odt),
    **dict.fromkeys((".odp", ".otp"), read_odp),
    ".epub": read_epub,
    ".rtf": read_rtf,
    ".mhtml": read_mhtml,
    ".mht": read_mhtml,
    **dict.fromkeys(IMAGE_SUFFIXES, read_image),
}
_OOXML_PARTS = ("[Content_Types].xml",)
_ODF_PARTS = ("content.xml",)
_ZIP_PARTS = {
    **dict.fromkeys((*_WORD_SUFFIXES, *_POWERPOINT_SUFFIXES, *_EXCEL_SUFFIXES), _OOXML_PARTS),
    **dict.fromkeys((".ods", ".ots", ".odt", ".ott", ".odp", ".otp"), _ODF_PARTS),
    ".epub": ("META-INF/container.xml",),
}
_TEXT_TYPES = {
    **dict.fromkeys((".txt", ".text", ".log", ".rst", ".org", ".adoc"), "txt"),
    **dict.fromkeys((".html", ".htm", ".xhtml"), "html"),
}
# One document each, from decoded text, with markup of their own to take apart
_TEXT_READERS: dict[str, Callable[[str, str], RawDocument]] = {
    **dict.fromkeys((".md", ".markdown", ".mdx"), read_markdown),
    ".ipynb": read_notebook,
    **dict.fromkeys((".srt", ".vtt"), read_subtitles),
}
_RECORD_READERS = {".json": read_json, ".jsonl": read_jsonl, ".ndjson": read_jsonl, ".csv": read_csv, ".tsv": read_csv}
# a table of records, or one document
_WORKBOOKS: dict[str, Callable[[bytes, str], Iterator[RawDocument | Rejected]]] = {
    **dict.fromkeys(_EXCEL_SUFFIXES, read_xlsx),
    ".xls": read_xls,
}
RECORD_SUFFIXES = frozenset({*_RECORD_READERS, *_WORKBOOKS})  # files that may hold many items, the others one

_MAIL_SUFFIXES = (".eml", ".mbox")
SUPPORTED_SUFFIXES = frozenset(
    {*_BINARY_READERS, *_TEXT_TYPES, *_TEXT_READERS, *RECORD_SUFFIXES, *_MAIL_SUFFIXES, *ARCHIVE_SUFFIXES}
)
# A placeholder for an item passed over unread (read_path's skip); never leaves read_path.
_UNREAD = Rejected(source="", stage="read", reason="unread", detail="")


def iter_files(paths: list[Path]) -> Iterator[Path]:
    """Files named or under named folders, sorted, hidden ones skipped (an unsupported one is read as its dead
    letter). Symlinked folders are followed, and each folder is walked once however many links lead to it (a link
    loop ends)."""
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


def split_names(paths: list[Path]) -> tuple[list[str], list[Rejected]]:
    """The paths a job can take as its files, and dead letters for those whose name is not UTF-8 (bytes of another
    encoding, which Python keeps as surrogates: SQL, JSON and Elasticsearch cannot hold such a name) or longer than
    SQL holds."""
    named: list[str] = []
    refused: list[Rejected] = []
    for path in paths:
        problem = name_problem(path)
        if problem is None:
            named.append(str(path))
        else:
            refused.append(Rejected(shown_name(path), "read", Reason.INVALID_NAME.value, problem))
    return named, refused


def name_problem(path: Path | str) -> str | None:
    try:
        size = len(str(path).encode("utf-8"))
    except UnicodeEncodeError:
        return "file name is not UTF-8 (another encoding's bytes): rename it (e.g. with convmv) and ingest it again"
    if size > MAX_SOURCE_BYTES:
        return f"path is {size} bytes long, at most {MAX_SOURCE_BYTES}: move the file up and ingest it again"
    return None


def shown_name(path: Path | str) -> str:
    """The path with the bytes that are not UTF-8 shown as U+FFFD, bounded as a source."""
    return bounded_source(str(path).encode("utf-8", "surrogateescape").decode("utf-8", "replace"))


def read_path(path: Path, max_bytes: int, base: Path | None = None, skip: int = 0) -> Iterator[RawDocument | Rejected]:
    """Yield the items (documents and refusals) of one file, after its first `skip` (a file read on where a
    stored part ended): an archive's members among those are not read at all when each holds one item. `base` is
    accepted for callers but unused: sources are absolute paths so that a document keeps its identity whatever the
    working dir."""
    del base
    yield from islice(_read_file(Path(path), max_bytes, skip), skip, None)


def count_items(path: Path, max_bytes: int) -> int:
    """How many items read_path yields for this file, reading no more of it than that takes: records files are
    parsed, an archive's members that hold one item each are only listed."""
    path = Path(path)
    suffix = path.suffix.lower()
    held = inner_name(path.name) if archive_kind(path.name) == "compressed" else path.name  # notes.eml.gz: .eml
    if not holds_many(path.name) or PurePosixPath(held).suffix.lower() == ".eml":
        return 1  # an e-mail's attachments are not read twice for the count: its total moves when they are read
    if suffix == ".mbox":
        try:
            return count_mbox(_read_bytes(path, max_bytes))  # its messages, as for an e-mail
        except InputError:
            return 1  # the read makes it its dead letter
    return sum(1 for _ in _read_file(path, max_bytes, skip=2**62))


def holds_many(name: str) -> bool:
    """Whether a file of this name may yield more than one item: a records file, an e-mail or mailbox, an archive."""
    suffix = PurePosixPath(name).suffix.lower()
    if archive_kind(name) == "compressed":
        return holds_many(inner_name(name))
    return suffix in RECORD_SUFFIXES or suffix in _MAIL_SUFFIXES or archive_kind(name) is not None


def _read_file(path: Path, max_bytes: int, skip: int) -> Iterator[RawDocument | Rejected]:
    source = source_of(path)
    try:
        _check_supported(path.name)  # before reading: an unsupported file is not loaded at all
        for item in _read_data(_read_bytes(path, max_bytes), source, path.name, max_bytes, 0, skip):
            yield _storable(item)
    except Exception as exc:  # noqa: BLE001 - whatever a reader raises is this file's dead letter, never the job's
        yield _rejected(source, exc)


def _storable(item: RawDocument | Rejected) -> RawDocument | Rejected:
    """The item's texts as every store takes them (a NUL, a lone surrogate or an over-long url failed the file's
    transaction on PostgreSQL, or on any database); metadata values are made so by check_metadata."""
    if isinstance(item, Rejected):
        item.source, item.detail = bounded_source(storable(item.source)), storable(item.detail)
        return item
    item.source, item.body = bounded_source(storable(item.source)), storable(item.body)
    item.title = storable(item.title) if item.title is not None else None
    item.origin = bounded_source(storable(item.origin)) if item.origin is not None else None
    return item


def source_of(path: Path) -> str:
    """The document source of a file: its resolved absolute path, or the absolute path as given when it cannot
    be resolved (a dangling link or a link loop), so that its dead letter names the file the user has."""
    try:
        return str(path.resolve(strict=True))
    except (OSError, RuntimeError):  # Python 3.11 raises RuntimeError for a symlink loop
        return str(path.absolute())


def _read_member(
    data: bytes, source: str, name: str, depth: int, skip: int = 0, max_bytes: int = 0
) -> Iterator[RawDocument | Rejected]:
    """A file inside another (an e-mail's attachment, an archive's member, what a .gz holds), read as a file of
    its name would be; its failure is its own dead letter. While `skip` lasts, a member that holds one item is
    passed over unread."""
    if skip > 0 and not holds_many(name):
        yield _UNREAD
        return
    try:
        if not data:
            raise InputError(Reason.EMPTY, "file is 0 bytes")
        yield from _read_data(data, source, name, max_bytes, depth, skip)
    except Exception as exc:  # noqa: BLE001 - as in read_path: the member's dead letter, not its container's
        yield _rejected(source, exc)


def _check_supported(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError(Reason.UNSUPPORTED_TYPE, f"unsupported file type {suffix or '(none)'!r}")
    return suffix


def _rejected(source: str, exc: Exception) -> Rejected:
    error = as_input_error(exc)
    return Rejected(source=source, stage="read", reason=error.reason.value, detail=error.message)


def _read_data(
    data: bytes, source: str, name: str, max_bytes: int, depth: int, skip: int = 0
) -> Iterator[RawDocument | Rejected]:
    suffix = _check_supported(name)
    if archive_kind(name) is not None:
        yield from read_archive(data, source, name, depth, max_bytes, skip, partial(_read_member, max_bytes=max_bytes))
        return
    if suffix in _ZIP_PARTS:
        check_zip(data, suffix[1:].upper(), _ZIP_PARTS[suffix], MAX_EXPANSION * max_bytes)
    if suffix in _BINARY_READERS:
        yield _BINARY_READERS[suffix](data, source)
        return
    if suffix in _WORKBOOKS:
        yield from _WORKBOOKS[suffix](data, source)
        return
    if suffix == ".eml":
        yield from read_eml(data, source, depth, partial(_read_member, max_bytes=max_bytes), SUPPORTED_SUFFIXES, skip)
        return
    if suffix == ".mbox":
        yield from read_mbox(data, source, depth, partial(_read_member, max_bytes=max_bytes), skip)
        return
    text = decode(data)
    if not text.strip():
        raise InputError(Reason.EMPTY, "file holds only whitespace")
    if suffix in _RECORD_READERS:
        yield from _RECORD_READERS[suffix](text, source)
        return
    if suffix in _TEXT_READERS:
        yield _TEXT_READERS[suffix](text, source)
        return
    ctype = _TEXT_TYPES[suffix]
    yield RawDocument(source=source, body=text, content_type=ctype, is_markup=ctype == "html")


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
