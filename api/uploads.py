"""Uploads streamed to disk: multipart files or a JSON batch, checked while they arrive.

Bytes go from the socket to a staging folder in the chunks the server hands over; a file that
passes its size limit stops the request there (413) and everything staged is removed. Only a
request received whole and valid moves its files into place, `uploads/<tenant>/<name>`: one
stable path per (tenant, upload name), because a document's identity is (tenant, source) and
the source of a file is its absolute path. Uploading a name again therefore replaces that
document (re-chunked and re-indexed if its content changed), as the ingest contract wants.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from api.errors import ApiError
from pipeline.formats import SUPPORTED_SUFFIXES
from pipeline.metadata import MetadataError, check_metadata

_MAX_NAME = 200
_MAX_HEADER_BYTES = 16 * 1024  # all part headers of one part together
_MAX_FORM_FIELD_BYTES = 256 * 1024  # a plain form field: metadata, far below any file


def check_name(raw: str) -> str:
    """The file name a document keeps: the last path component, without control characters."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or name in (".", "..") or name.startswith("."):
        raise ApiError(422, f"file name {raw!r} is empty or hidden; name the file", "invalid_file_name")
    if len(name) > _MAX_NAME or any(ord(c) < 32 or c == "\x7f" for c in name):
        raise ApiError(422, f"file name {raw[:60]!r} is too long or holds control characters", "invalid_file_name")
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ApiError(
            415,
            f"{name}: unsupported file type {suffix or '(none)'!r}; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}",
            file=name,
        )
    return name


@dataclass
class Staging:
    """A request's private folder; `commit` moves its files to their stable paths."""

    root: Path  # data_dir/uploads
    tenant: str
    folder: Path = field(init=False)
    names: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)  # plain form fields: the upload's metadata

    def __post_init__(self):
        self.folder = self.root / ".incoming" / uuid.uuid4().hex
        self.folder.mkdir(parents=True)

    def new_file(self, name: str):
        if name in self.names:
            raise ApiError(422, f"{name} appears twice in one upload", "duplicate_file_name", file=name)
        self.names.append(name)
        return open(self.folder / name, "wb")

    def commit(self, rename: dict[str, str] | None = None) -> list[str]:
        target = self.root / self.tenant
        target.mkdir(parents=True, exist_ok=True)
        paths = []
        for name in self.names:
            final = target / (rename or {}).get(name, name)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.folder / name, final)  # atomic: a reader sees the old file or the new one
            paths.append(str(final))
        self.discard()
        return paths

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class _Part:
    def __init__(self):
        self.headers: dict[bytes, bytes] = {}
        self.field, self.value, self.header_bytes = b"", b"", 0
        self.handle = None
        self.name = ""
        self.size = 0
        self.form: str | None = None  # the name of a plain form field (no filename)
        self.text = bytearray()


async def receive_multipart(
    stream: AsyncIterator[bytes], content_type: str, staging: Staging, max_file_bytes: int, max_files: int
) -> None:
    """Parse a multipart body from `stream` into staging; every file part is an upload."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(422, "multipart body without a boundary parameter in Content-Type", "invalid_body")
    events: list[tuple[str, bytes]] = []

    def on_data(kind: str):
        return lambda data, start, end: events.append((kind, data[start:end]))

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": lambda: events.append(("begin", b"")),
            "on_header_field": on_data("field"),
            "on_header_value": on_data("value"),
            "on_header_end": lambda: events.append(("header_end", b"")),
            "on_headers_finished": lambda: events.append(("headers_done", b"")),
            "on_part_data": on_data("data"),
            "on_part_end": lambda: events.append(("end", b"")),
        },
    )
    part = _Part()
    try:
        async for chunk in stream:
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                raise ApiError(422, f"malformed multipart body: {exc}", "invalid_body") from None
            for kind, data in events:
                part = _on_event(kind, data, part, staging, max_file_bytes, max_files)
            events.clear()
        try:
            parser.finalize()
        except MultipartParseError as exc:
            raise ApiError(422, f"malformed multipart body: {exc}", "invalid_body") from None
        if part.handle is not None:
            raise ApiError(422, "multipart body ended in the middle of a file", "invalid_body")
    finally:
        if part.handle is not None:
            part.handle.close()
    if not staging.names:
        raise ApiError(422, "no file in the upload: send multipart parts with a filename", "no_files")


def _on_event(kind: str, data: bytes, part: _Part, staging: Staging, max_file_bytes: int, max_files: int) -> _Part:
    if kind == "begin":
        return _Part()
    if kind in ("field", "value"):
        part.header_bytes += len(data)
        if part.header_bytes > _MAX_HEADER_BYTES:
            raise ApiError(422, "multipart part headers are too long", "invalid_body")
        if kind == "field":
            part.field += data
        else:
            part.value += data
    elif kind == "header_end":
        part.headers[part.field.strip().lower()] = part.value
        part.field, part.value = b"", b""
    elif kind == "headers_done":
        _, options = parse_options_header(part.headers.get(b"content-disposition", b""))
        filename = options.get(b"filename")
        if filename is None:  # a plain form field carries no document: it is metadata (docs/metadata.md)
            part.form = options.get(b"name", b"").decode("utf-8", "replace")
        else:
            if len(staging.names) >= max_files:
                raise ApiError(413, f"more than {max_files} files in one upload; split it", "too_many_files")
            part.name = check_name(filename.decode("utf-8", "replace"))
            part.handle = staging.new_file(part.name)
    elif kind == "data" and part.handle is not None:
        part.size += len(data)
        if part.size > max_file_bytes:
            raise ApiError(
                413,
                f"{part.name} is larger than the {max_file_bytes}-byte limit per file (DOCPIPE_MAX_FILE_BYTES)",
                file=part.name,
                limit=max_file_bytes,
            )
        part.handle.write(data)
    elif kind == "data" and part.form is not None:
        part.text += data
        if len(part.text) > _MAX_FORM_FIELD_BYTES:
            raise ApiError(413, f"form field {part.form!r} is over {_MAX_FORM_FIELD_BYTES} bytes", "invalid_body")
    elif kind == "end" and part.handle is not None:
        part.handle.close()
        part.handle = None
    elif kind == "end" and part.form:
        staging.fields[part.form] = part.text.decode("utf-8", "replace")
    return part


def upload_metadata(fields: dict[str, str]) -> dict:
    """The metadata of every document of a multipart upload: plain form fields (strings), and the pairs of a
    `metadata` field holding a JSON object (typed values; they win over a plain field of the same key)."""
    plain = {k: v for k, v in fields.items() if k != "metadata"}
    given: object = {}
    if "metadata" in fields:
        try:
            given = json.loads(fields["metadata"])
        except ValueError:
            raise ApiError(422, "form field metadata: not JSON; send a JSON object of key/value pairs") from None
    if not isinstance(given, dict):
        raise ApiError(422, "form field metadata: send a JSON object of key/value pairs")
    try:
        return check_metadata({**check_metadata(plain), **check_metadata(given)})
    except MetadataError as exc:
        raise ApiError(422, f"metadata: {exc}") from None


# --- JSON batches ---------------------------------------------------------------------------


class BatchDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(
        min_length=1,
        max_length=1024,
        description="The document's identity within the tenant: sending the same id again replaces it.",
    )
    text: str = Field(min_length=1, description="Plain text or HTML.")
    title: str | None = Field(None, max_length=4096)
    published: datetime | None = None
    meta: dict[str, str | int | float | bool | list[str | int | float | bool]] = Field(
        default_factory=dict, max_length=64, description="Metadata to filter and facet on (docs/metadata.md)"
    )

    @field_validator("id", "text", "title")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("meta")
    @classmethod
    def _plain_meta(cls, meta: dict) -> dict:
        reserved = {"id", "url", "text", "body", "content", "title", "published"}
        clash = sorted(reserved & set(meta))
        if clash:
            raise ValueError(f"meta keys {', '.join(clash)} are reserved")
        for key, value in meta.items():
            if "\x00" in key or (isinstance(value, str) and "\x00" in value):
                raise ValueError("must not contain NUL characters")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"meta {key!r} is not a finite number")
        check_metadata(meta)  # the limits every source has (a MetadataError is a ValueError: a 422)
        return meta


class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[BatchDocument] = Field(min_length=1, max_length=10_000)

    @field_validator("documents")
    @classmethod
    def _distinct_ids(cls, documents: list[BatchDocument]) -> list[BatchDocument]:
        # an id is the document's identity: two texts under one id in one batch would leave only one of them
        seen: dict[str, int] = {}
        for n, doc in enumerate(documents):
            first = seen.setdefault(doc.id.strip(), n)
            if first != n:
                raise ValueError(f"documents.{n}.id {doc.id!r} repeats documents.{first}.id: each needs its own id")
        return documents


async def read_capped(stream: AsyncIterator[bytes], limit: int) -> bytes:
    body = bytearray()
    async for chunk in stream:
        body += chunk
        if len(body) > limit:
            raise ApiError(
                413,
                f"JSON body is larger than {limit} bytes (DOCPIPE_API_MAX_JSON_BYTES); "
                "send several batches or upload a .jsonl file",
                limit=limit,
            )
    return bytes(body)


def parse_batch(body: bytes) -> Batch:
    try:
        value = json.loads(body)
    except RecursionError:
        raise ApiError(422, "invalid JSON: nested too deeply to parse", "invalid_json") from None
    except ValueError as exc:  # syntax, undecodable bytes, or an integer of more digits than Python converts
        raise ApiError(422, f"invalid JSON: {str(exc)[:300]}", "invalid_json") from None
    try:
        return Batch.model_validate(value)
    except ValidationError as exc:
        problems = [{"where": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()]
        first = problems[0]
        raise ApiError(
            422, f"invalid batch: {first['where']}: {first['problem']}", "invalid_batch", problems=problems[:50]
        ) from None


def write_batch(batch: Batch, staging: Staging) -> str:
    """The batch as a JSON-lines file the ingest reader understands; returns its staged name."""
    name = f"batch-{staging.folder.name}.jsonl"
    with staging.new_file(name) as fh:
        for doc in batch.documents:
            record = {**doc.meta, "id": doc.id, "text": doc.text}
            if doc.title:
                record["title"] = doc.title
            if doc.published:
                record["published"] = doc.published.isoformat()
            fh.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
    return name
