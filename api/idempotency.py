"""Idempotency-Key on every POST under /v1: a retried request gets the first one's response, not a second job.

Pure ASGI middleware (pipeline/store/idempotency.py keeps the state): it claims the key for the caller's
tenant, hashes the body as the route reads it, and records a 2xx answer; any other answer releases the key,
so a retry runs again. A retry replays the answer with `Idempotent-Replayed: true`; the same key with a
different method, path or body is a 422 (for multipart uploads the key alone decides: their boundary is
random per send); a retry while the first still runs is a 409 with Retry-After.
"""

from __future__ import annotations

import hashlib
import json

from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import key_of, tenant_for
from api.errors import error_body
from pipeline.store import idempotency
from pipeline.store.idempotency import Claim

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
MAX_BODY = 1 << 20  # answers larger than this are not kept (job-creating answers are a few hundred bytes)


class Idempotency:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        key = request.headers.get(HEADER)
        if key is None:
            await self.app(scope, receive, send)
            return
        if not 0 < len(key) <= idempotency.MAX_KEY:
            await _answer(send, 422, error_body(422, f"{HEADER} must be 1 to {idempotency.MAX_KEY} characters"))
            return
        ctx = scope["app"].state.ctx
        tenant = await run_in_threadpool(tenant_for, request, key_of(request))
        if tenant is None:  # the route answers 401 as it always does
            await self.app(scope, receive, send)
            return
        try:
            state, row = await run_in_threadpool(_claim, ctx, tenant, key)
        except IntegrityError:  # a request with the same key claimed it a moment ago
            state, row = Claim.RUNNING, None
        if state == Claim.RUNNING:
            message = f"a request with this {HEADER} is still running; retry in a moment"
            await _answer(send, 409, error_body(409, message), {"Retry-After": "1"})
            return
        digest = _fingerprint(scope)
        if state == Claim.DONE and row is not None:
            while True:  # the retry's body, to tell it from a different request under the same key
                message = await receive()
                digest.update(message.get("body", b""))
                if not message.get("more_body"):
                    break
            if digest.hexdigest() != row.fingerprint:
                message = f"this {HEADER} was used for a different request; send a new key for a new request"
                await _answer(send, 422, error_body(422, message))
                return
            await _send(send, row.status or 200, row.body or b"", row.content_type, {REPLAYED: "true"})
            return
        await self._first(scope, receive, send, ctx, tenant, key, digest)

    async def _first(self, scope, receive, send, ctx, tenant: str, key: str, digest) -> None:
        answer: dict = {"status": 500, "type": None, "body": bytearray(), "whole": True}

        async def hashing_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                digest.update(message.get("body", b""))
            return message

        async def keeping_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
                answer["type"] = headers.get("content-type")
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")
                answer["whole"] = answer["whole"] and len(answer["body"]) <= MAX_BODY
            await send(message)

        try:
            await self.app(scope, hashing_receive, keeping_send)
        finally:
            if 200 <= answer["status"] < 300 and answer["whole"]:
                body = bytes(answer["body"])
                await run_in_threadpool(
                    _record, ctx, tenant, key, digest.hexdigest(), answer["status"], answer["type"], body
                )
            else:
                await run_in_threadpool(_release, ctx, tenant, key)


def _fingerprint(scope: Scope):
    """Method, path and query, then the body as it streams. A multipart body is left out: its boundary is
    random per send, so a faithful retry of an upload differs in bytes; for uploads the key alone decides."""
    digest = hashlib.sha256()
    digest.update(f"{scope['method']} {scope['path']}?{scope.get('query_string', b'').decode()}\n".encode())
    return _Headless(digest) if _multipart(scope) else digest


def _multipart(scope: Scope) -> bool:
    return any(k == b"content-type" and v.lower().startswith(b"multipart/") for k, v in scope.get("headers", []))


class _Headless:
    """A digest that ignores the body fed to it."""

    def __init__(self, digest):
        self.digest = digest

    def update(self, _data: bytes) -> None:
        pass

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


def _claim(ctx, tenant: str, key: str):
    with ctx.session() as session:
        state, row = idempotency.claim(session, tenant, key)
        if row is not None:
            session.expunge(row)
        return state, row


def _record(ctx, tenant, key, fingerprint, status, content_type, body) -> None:
    with ctx.session() as session:
        idempotency.record(session, tenant, key, fingerprint, status, content_type, body)


def _release(ctx, tenant: str, key: str) -> None:
    with ctx.session() as session:
        idempotency.release(session, tenant, key)


async def _answer(send: Send, status: int, body: dict, headers: dict | None = None) -> None:
    await _send(send, status, json.dumps(body).encode(), "application/json", headers)


async def _send(send: Send, status: int, body: bytes, content_type: str | None, headers: dict | None = None) -> None:
    raw = [(b"content-length", str(len(body)).encode())]
    if content_type:
        raw.append((b"content-type", content_type.encode()))
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def document(doc: dict) -> None:
    """Name the header, and its 409, on every POST under /v1 of the OpenAPI document."""
    parameter = {
        "name": HEADER,
        "in": "header",
        "required": False,
        "description": "Retries with the same key get the first response (kept 24 h) instead of a second job",
        "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_KEY},
    }
    for path, methods in doc.get("paths", {}).items():
        operation = methods.get("post")
        if operation is None or not path.startswith("/v1/"):
            continue
        operation.setdefault("parameters", []).append(parameter)
        operation.setdefault("responses", {}).setdefault(
            "409",
            {
                "description": f"A request with this {HEADER} is still running",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        )
