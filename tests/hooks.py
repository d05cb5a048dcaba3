"""A local webhook receiver for tests: answers with scripted statuses and keeps what it was sent."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hook:
    def __init__(self, statuses: list[int] | None = None):
        self.statuses = list(statuses or [])  # answered in turn; 200 once they run out
        self.received: list[tuple[int, dict, dict]] = []  # (status answered, body, headers)
        self.raw_bodies: list[tuple[bytes, dict]] = []  # (body as sent, headers): what a signature covers
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.loads(raw or b"{}")
                status = hook.statuses.pop(0) if hook.statuses else 200
                hook.raw_bodies.append((raw, dict(self.headers)))
                hook.received.append((status, body, dict(self.headers)))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def __enter__(self) -> Hook:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
