"""E-mail (.eml): the message's text body is one document, and each attachment docpipe reads is a document of its own.
A mailbox (.mbox: Thunderbird, Apple Mail, Google Takeout exports) is read message by message, each as an .eml file;
a web page saved as one MIME file (.mhtml) as its HTML.

Attachments are read by the reader their file name picks, which the caller passes in (`read_attachment`): that
reader is the file dispatcher, which itself calls this module for .eml, so importing it would be a cycle.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.errors
import email.policy
import quopri
import re
from collections import Counter
from collections.abc import Callable, Iterator
from email.message import Message, MIMEPart
from pathlib import PurePosixPath

from pipeline.errors import InputError, Reason
from pipeline.formats.common import as_utc, decode, markup_to_text, one_line, properties
from pipeline.formats.image import IMAGE_SUFFIXES
from pipeline.types import RawDocument, Rejected

# Attached messages are read this many levels down; a deeper one is a dead letter saying so.
MAX_DEPTH = 3
_HEADERS = {"from": "From", "to": "To", "cc": "Cc", "subject": "Subject", "date": "Date", "message_id": "Message-ID"}
_HEADER_ERRORS = (ValueError, LookupError, TypeError, AttributeError, email.errors.MessageError)
# what regenerating an attached message can trip over besides: headers it cannot encode
_PART_ERRORS = (*_HEADER_ERRORS, UnicodeError, binascii.Error)
_MAX_NAME = 200

# mbox: a message starts after each line that begins "From " (the rule of Python's mailbox module); mboxrd quotes
# such lines of a body as ">From ", ">>From ", ...
_FROM_LINE = re.compile(rb"^From ", re.MULTILINE)
_QUOTED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)
# a Message-ID header, maybe folded onto the next line
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(?:\r?\n[ \t]+)?<?([^<>\s]+)>?", re.IGNORECASE | re.MULTILINE)
_HEAD_END = re.compile(rb"\r?\n\r?\n")

# (bytes, source, name, depth, skip) -> what read_path would yield for a file of that name, the first `skip` items
# possibly as placeholders, unread (a read that goes on after a stored part); never raises
AttachmentReader = Callable[[bytes, str, str, int, int], Iterator[RawDocument | Rejected]]


def read_eml(
    data: bytes, source: str, depth: int, read_attachment: AttachmentReader, suffixes: frozenset[str], skip: int = 0
) -> Iterator[RawDocument | Rejected]:
    """The message's text body, then each attachment docpipe reads; while `skip` lasts, an attachment that holds one
    item is passed over unread (as an archive's member is)."""
    if depth > MAX_DEPTH:
        raise InputError(
            Reason.TOO_DEEP, f"message attached {depth} levels deep; attached messages are read {MAX_DEPTH} levels deep"
        )
    message = email.message_from_bytes(data, policy=email.policy.default)
    headers = {key: _header(message, name) for key, name in _HEADERS.items()}
    if not any(headers.values()):
        raise InputError(Reason.CORRUPT_FILE, "not an e-mail message: no From, To, Subject or Date header")
    body_part = message.get_body(preferencelist=("plain", "html"))
    attachments = [part for part in _attachments(message) if part is not body_part]
    names = [_file_name(part, n) for n, part in enumerate(attachments, 1)]
    numbered = enumerate(zip(names, attachments), 1)
    readable = [(n, name, part) for n, (name, part) in numbered if _is_read(name, part, suffixes)]
    first: list[RawDocument | Rejected] = []  # the body's document or dead letter
    try:
        body = _body_text(body_part) if body_part is not None else ""
    except InputError as exc:  # a binary or undecodable body: the message's dead letter; its attachments go on
        first.append(Rejected(source=source, stage="read", reason=exc.reason.value, detail=exc.message))
        body = None
    if body:
        first.append(
            RawDocument(
                source=source,
                body=body,
                content_type="eml",
                title=headers["subject"] or None,
                published=as_utc(headers["date"]),
                metadata=properties(**headers, attachments=names),
            )
        )
    elif body is not None and not readable:
        raise InputError(Reason.EMPTY, f"message has no text body and none of its {len(names)} attachment(s) is read")
    yield from first
    remaining = max(0, skip - len(first))
    for n, name, part in readable:
        for item in _read_one(part, f"{source}#attachment/{n}/{name}", name, source, depth, read_attachment, remaining):
            remaining = max(0, remaining - 1)
            yield item


def _is_read(name: str, part: MIMEPart, suffixes: frozenset[str]) -> bool:
    """A part of a type docpipe reads; an image only when attached, not shown in the body (a logo, a signature)."""
    suffix = _suffix(name)
    return suffix in suffixes and (suffix not in IMAGE_SUFFIXES or part.get_content_disposition() == "attachment")


def _read_one(
    part: MIMEPart, source: str, name: str, parent: str, depth: int, read_attachment: AttachmentReader, skip: int
) -> Iterator[RawDocument | Rejected]:
    try:
        payload = _payload(part)
    except _PART_ERRORS as exc:
        detail = one_line(f"attachment cannot be decoded: {type(exc).__name__}: {exc}")
        yield Rejected(source=source, stage="read", reason=Reason.CORRUPT_FILE.value, detail=detail)
        return
    for item in read_attachment(payload, source, name, depth + 1, skip):
        if isinstance(item, RawDocument):
            # setdefault: an attachment of an attached message stays the attachment of that message
            item.metadata.setdefault("attachment_of", parent)
            item.metadata.setdefault("filename", name)
        yield item


def _payload(part: MIMEPart) -> bytes:
    """The attachment's bytes: transfer encoding undone, an attached message as the bytes of an .eml file."""
    if part.get_content_type() != "message/rfc822":
        payload = part.get_payload(decode=True)
        return payload if isinstance(payload, bytes) else b""
    inner = part.get_payload(0)
    if not isinstance(inner, Message):
        return b""
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if encoding in ("base64", "quoted-printable"):
        # RFC 2046 forbids encoding a message/rfc822 part, but some clients do it: the parser then took the encoded
        # text for a message without headers, and the attached message is that text decoded.
        encoded = inner.get_payload()
        if not isinstance(encoded, str):
            return b""
        return base64.b64decode(encoded) if encoding == "base64" else quopri.decodestring(encoded.encode("ascii"))
    return inner.as_bytes()


def _header(message: MIMEPart, name: str) -> str:
    try:
        value = message.get(name)
    except _HEADER_ERRORS:  # a header the parser cannot make sense of counts as absent
        return ""
    return one_line(value, 1000) if value is not None else ""


def _attachments(part: MIMEPart) -> Iterator[MIMEPart]:
    """Parts with a file name, and attached messages, in any multipart level; an attached message is one part."""
    for sub in part.iter_parts():
        if sub.get_content_type() == "message/rfc822":
            yield sub
        elif sub.is_multipart():
            yield from _attachments(sub)
        elif sub.is_attachment() or _raw_name(sub):
            yield sub


def _file_name(part: MIMEPart, n: int) -> str:
    """The attachment's name as a source may hold it: the last path part, no control characters, bounded."""
    raw = _raw_name(part)
    name = "".join(c for c in raw.replace("\\", "/").rsplit("/", 1)[-1] if c.isprintable()).strip()[:_MAX_NAME]
    if part.get_content_type() == "message/rfc822" and _suffix(name) != ".eml":
        name = f"{name or f'message-{n}'}.eml"
    return name if name not in ("", ".", "..") else f"attachment-{n}"


def _raw_name(part: MIMEPart) -> str:
    try:
        return part.get_filename() or ""
    except _HEADER_ERRORS:
        return ""


def _suffix(name: str) -> str:
    return PurePosixPath(name).suffix.lower()


def _body_text(part: MIMEPart) -> str:
    """The text/plain body, else the text/html one as text."""
    text = _part_text(part)
    if part.get_content_subtype() == "html":
        text = markup_to_text(text)
    return text.strip()


def _part_text(part: Message) -> str:
    """A text part decoded: its declared charset, else the text files' guess."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes) or not payload.strip():
        return ""
    charset = part.get_content_charset()
    try:
        return payload.decode(charset, errors="replace") if charset else decode(payload)
    except LookupError:  # an unknown charset name
        return decode(payload)


def read_mhtml(data: bytes, source: str) -> RawDocument:
    """A web page saved as one file (.mhtml, .mht: a MIME message of the page and its images): its HTML part, cleaned
    as an .html file is, with the address it was saved from as `url`."""
    try:
        message = email.message_from_bytes(data, policy=email.policy.default)
        page = next((part for part in message.walk() if part.get_content_type() == "text/html"), None)
        if page is None:
            raise InputError(Reason.CORRUPT_FILE, "not a saved web page: no text/html part")
        markup = _part_text(page)
        url = message.get("Snapshot-Content-Location") or page.get("Content-Location")
    except _PART_ERRORS as exc:
        raise InputError(Reason.CORRUPT_FILE, one_line(f"unreadable MHTML: {type(exc).__name__}: {exc}")) from None
    if not markup.strip():
        raise InputError(Reason.EMPTY, "the saved page's HTML is empty")
    return RawDocument(
        source=source, body=markup, content_type="html", is_markup=True, metadata=properties(url=str(url or ""))
    )


def read_mbox(
    data: bytes, source: str, depth: int, read_message: AttachmentReader, skip: int = 0
) -> Iterator[RawDocument | Rejected]:
    """Each message of a mailbox read as an .eml file (its attachments too), its failure its own dead letter. A
    message is named `<mbox>#<Message-ID>`, so that a mailbox exported again, in another order or with messages
    added or removed, keeps each message's identity; `<mbox>#<n>` (its place) when it has no Message-ID or shares it
    with another message of the file."""
    messages = mbox_messages(data)
    ids = [_message_id(message) for message in messages]
    shared = Counter(ids)
    remaining = skip
    for n, (message, message_id) in enumerate(zip(messages, ids), 1):
        key = message_id if message_id is not None and shared[message_id] == 1 else str(n)
        for item in read_message(message, f"{source}#{key}", "message.eml", depth, remaining):
            remaining = max(0, remaining - 1)
            yield item


def mbox_messages(data: bytes) -> list[bytes]:
    """A mailbox's messages, their "From " lines gone and mboxrd's quoting undone."""
    if not data.startswith(b"From "):
        raise InputError(Reason.CORRUPT_FILE, 'not an mbox mailbox: it does not start with a "From " line')
    starts = [match.start() for match in _FROM_LINE.finditer(data)]
    messages = []
    for begin, end in zip(starts, [*starts[1:], len(data)]):
        line_end = data.find(b"\n", begin, end)
        message = data[line_end + 1 : end] if line_end >= 0 else b""
        messages.append(_QUOTED_FROM.sub(rb"\1", message))
    return messages


def count_mbox(data: bytes) -> int:
    """How many messages a mailbox holds, without reading them (their attachments add to a job's total as read)."""
    return len(_FROM_LINE.findall(data)) if data.startswith(b"From ") else 1


def _message_id(message: bytes) -> str | None:
    head = _HEAD_END.split(message, 1)[0]
    match = _MESSAGE_ID.search(head)
    return match.group(1).decode("ascii", "replace") if match else None
