"""Archives and compressed files. A .zip or a tar (.tar, .tar.gz/.tgz, .tar.bz2/.tbz2, .tar.xz/.txz) holds files
that are each read as a file of that name would be, each its own document(s), named `<archive>#<path inside>`.
A .gz, .bz2 or .xz of one file is read as that file (`notes.txt.gz` as a .txt) under the file's own source.

Guards: the members are listed before any is read, and an archive of more than MAX_MEMBERS files or of more bytes
unpacked than MAX_EXPANSION times the file size limit is refused whole (a zip bomb); a member over the file size
limit is its own `too_large` dead letter, and no member is inflated past that limit whatever its header says.
Archives inside archives are read MAX_DEPTH levels deep. Folders, links and hidden members (a name part that
starts with a dot, or macOS's __MACOSX) are passed over as a folder walk passes them over.

The reader of one member is the file dispatcher, which the caller passes in (it calls this module: a cycle).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import PurePosixPath
from typing import Any

from pipeline.errors import InputError, Reason
from pipeline.formats.common import MALFORMED, MAX_EXPANSION, one_line
from pipeline.types import RawDocument, Rejected

MAX_MEMBERS = 50_000
MAX_DEPTH = 3
_TAR_ENDINGS = (".tar", ".tgz", ".tbz2", ".txz", ".tar.gz", ".tar.bz2", ".tar.xz")
_COMPRESSED: dict[str, Callable[..., Any]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
ARCHIVE_SUFFIXES = frozenset({".zip", ".tar", ".tgz", ".tbz2", ".txz", *_COMPRESSED})
# What tarfile, zipfile and the decompressors raise on a malformed or truncated archive.
_BROKEN: tuple[type[BaseException], ...] = (*MALFORMED, tarfile.TarError, lzma.LZMAError, OSError, zlib.error)

# (bytes, source, name, depth, skip) -> what a file of that name yields, the first `skip` items possibly as
# placeholders it did not read; never raises
MemberReader = Callable[[bytes, str, str, int, int], Iterator[RawDocument | Rejected]]


@dataclass(frozen=True)
class _Member:
    name: str
    load: Callable[[], bytes]  # raises InputError


def archive_kind(name: str) -> str | None:
    """ "zip", "tar" or "compressed" (one file) by the file's name; None for any other file."""
    lower = name.lower()
    if lower.endswith(".zip"):
        return "zip"
    if lower.endswith(_TAR_ENDINGS):
        return "tar"
    return "compressed" if PurePosixPath(lower).suffix in _COMPRESSED else None


def inner_name(name: str) -> str:
    """The name of the file a compressed file holds: `notes.txt.gz` holds `notes.txt`."""
    return name[: -len(PurePosixPath(name).suffix)]


def read_archive(
    data: bytes, source: str, name: str, depth: int, max_bytes: int, skip: int, read_member: MemberReader
) -> Iterator[RawDocument | Rejected]:
    if depth > MAX_DEPTH:
        raise InputError(Reason.TOO_DEEP, f"archive nested {depth} levels deep; archives are read {MAX_DEPTH} deep")
    kind = archive_kind(name)
    if kind == "compressed":
        inner = _decompressed(data, PurePosixPath(name.lower()).suffix, max_bytes)
        yield from read_member(inner, source, inner_name(name), depth + 1, skip)
        return
    members = _zip_members(data, max_bytes) if kind == "zip" else _tar_members(data, max_bytes)
    remaining = skip
    for member in members:
        member_source = f"{source}#{member.name}"
        try:
            items = read_member(member.load(), member_source, member.name, depth + 1, remaining)
        except InputError as exc:
            items = iter([Rejected(member_source, "read", exc.reason.value, exc.message)])
        for item in items:
            remaining = max(0, remaining - 1)
            if isinstance(item, RawDocument):
                item.metadata.setdefault("archive", source)  # setdefault: a nested archive's member keeps its own
                item.metadata.setdefault("filename", member.name)
            yield item


def _decompressed(data: bytes, suffix: str, max_bytes: int) -> bytes:
    try:
        with _COMPRESSED[suffix](io.BytesIO(data)) as stream:
            inner = stream.read(max_bytes + 1)
    except _BROKEN as exc:
        raise InputError(Reason.CORRUPT_FILE, one_line(f"cannot decompress {suffix[1:]}: {exc}")) from None
    if len(inner) > max_bytes:
        raise InputError(Reason.TOO_LARGE, f"file unpacks to more than the limit of {max_bytes} bytes")
    return inner


def _zip_members(data: bytes, max_bytes: int) -> Iterator[_Member]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = [info for info in archive.infolist() if not info.is_dir() and _visible(info.filename)]
    except _BROKEN as exc:
        raise InputError(Reason.CORRUPT_FILE, one_line(f"not a readable zip archive: {exc}")) from None
    _check_listing(len(infos), sum(info.file_size for info in infos), max_bytes)
    with archive:
        for info in infos:
            yield _Member(_clean_name(info.filename), partial(_zip_bytes, archive, info, max_bytes))


def _zip_bytes(archive: zipfile.ZipFile, info: zipfile.ZipInfo, max_bytes: int) -> bytes:
    if info.flag_bits & 0x1:
        raise InputError(Reason.ENCRYPTED, "archive member is encrypted with a password: unpack it and ingest it")

    def read() -> bytes:
        with archive.open(info) as stream:
            return stream.read(max_bytes + 1)

    return _unpacked(read, info.file_size, max_bytes)


def _tar_members(data: bytes, max_bytes: int) -> Iterator[_Member]:
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
        infos = [info for info in archive.getmembers() if info.isfile() and _visible(info.name)]
    except _BROKEN as exc:
        raise InputError(Reason.CORRUPT_FILE, one_line(f"not a readable tar archive: {exc}")) from None
    _check_listing(len(infos), sum(info.size for info in infos), max_bytes)
    with archive:
        for info in infos:
            yield _Member(_clean_name(info.name), partial(_tar_bytes, archive, info, max_bytes))


def _tar_bytes(archive: tarfile.TarFile, info: tarfile.TarInfo, max_bytes: int) -> bytes:
    def read() -> bytes:
        stream = archive.extractfile(info)
        return stream.read(max_bytes + 1) if stream is not None else b""

    return _unpacked(read, info.size, max_bytes)


def _unpacked(read: Callable[[], bytes], declared: int, max_bytes: int) -> bytes:
    """A member's bytes, refused over the file size limit by its header, and by what it inflates to if that lied."""
    if declared > max_bytes:
        raise InputError(Reason.TOO_LARGE, f"file is {declared} bytes, limit is {max_bytes}")
    try:
        data = read()
    except _BROKEN as exc:
        raise InputError(Reason.CORRUPT_FILE, one_line(f"archive member cannot be unpacked: {exc}")) from None
    if len(data) > max_bytes:
        raise InputError(Reason.TOO_LARGE, f"file unpacks to more than the limit of {max_bytes} bytes")
    return data


def _check_listing(count: int, unpacked: int, max_bytes: int) -> None:
    if count > MAX_MEMBERS:
        raise InputError(Reason.TOO_LARGE, f"archive holds {count} files, more than {MAX_MEMBERS}: split it")
    if unpacked > MAX_EXPANSION * max_bytes:
        raise InputError(
            Reason.TOO_LARGE,
            f"archive unpacks to {unpacked} bytes, more than {MAX_EXPANSION} x the file size limit (zip bomb?)",
        )


def _visible(name: str) -> bool:
    return not any(part.startswith(".") or part == "__MACOSX" for part in _clean_name(name).split("/"))


def _clean_name(raw: str) -> str:
    """The member's path as a source may hold it: forward slashes, no leading ./ or /, no control characters."""
    parts = [p for p in raw.replace("\\", "/").split("/") if p not in ("", ".")]
    return "".join(c for c in "/".join(parts) if c.isprintable())
