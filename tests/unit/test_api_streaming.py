"""An oversized upload is refused while it streams: reading stops near the limit, memory stays flat."""

from __future__ import annotations

import asyncio
import tracemalloc

from tests.unit.api_support import Api

MB = 1024 * 1024
BOUNDARY = b"docpipe-test-boundary"


class Body:
    """A multipart body produced 64 KiB at a time, counting what the server pulled."""

    def __init__(self, name: str, size: int):
        self.head = (
            b"--"
            + BOUNDARY
            + b'\r\nContent-Disposition: form-data; name="files"; filename="'
            + name.encode()
            + b'"\r\nContent-Type: text/plain\r\n\r\n'
        )
        self.tail = b"\r\n--" + BOUNDARY + b"--\r\n"
        self.size, self.sent = size, 0
        self.chunks = self._chunks()

    def _chunks(self):
        yield self.head
        block = b"lorem ipsum " * (64 * 1024 // 12)
        left = self.size
        while left > 0:
            piece = block[: min(left, len(block))]
            left -= len(piece)
            yield piece
        yield self.tail

    async def receive(self):
        chunk = next(self.chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        self.sent += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}


def _post(app, key: str, body: Body) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/documents",
        "raw_path": b"/v1/documents",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
        "headers": [
            (b"host", b"testserver"),
            (b"x-api-key", key.encode()),
            (b"content-type", b"multipart/form-data; boundary=" + BOUNDARY),
        ],
    }
    status, chunks = [0], []

    async def send(message):
        if message["type"] == "http.response.start":
            status[0] = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    asyncio.run(app(scope, body.receive, send))
    return status[0], b"".join(chunks)


def test_oversized_upload_stops_at_the_limit_with_flat_memory(tmp_path):
    limit = 2 * MB
    api = Api(tmp_path, max_file_bytes=limit)
    key = api.key("acme")["X-API-Key"]
    body = Body("huge.txt", 40 * MB)
    tracemalloc.start()
    try:
        status, reply = _post(api.app, key, body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 413 and b"huge.txt" in reply and b"payload_too_large" in reply
    assert body.sent < limit + 256 * 1024  # it stopped reading right after the limit, not at the end
    assert peak < 4 * MB  # well below both the upload (40 MiB) and the limit
    assert api.sent == [] and not (api.ctx.uploads_dir / "acme").exists()
    assert list((api.ctx.uploads_dir / ".incoming").iterdir()) == []


def test_a_large_accepted_upload_is_written_without_holding_it_in_memory(tmp_path):
    api = Api(tmp_path, max_file_bytes=64 * MB)
    key = api.key("acme")["X-API-Key"]
    body = Body("large.txt", 24 * MB)
    tracemalloc.start()
    try:
        status, reply = _post(api.app, key, body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 202, reply
    saved = api.ctx.uploads_dir / "acme" / "large.txt"
    assert saved.stat().st_size == 24 * MB and saved.read_bytes()[:12] == b"lorem ipsum "
    assert peak < 4 * MB
