"""A fault-injecting HTTP proxy in front of the embedded server's Elasticsearch API: the real client, over real
HTTP, meets what a cluster shedding load answers. Bulk requests are refused whole (429, 502, 503) at a given
rate, and single bulk items are refused 429 at a rate, or always for documents whose source path holds a
marker; what is refused is never forwarded, so the index holds only what the proxy says was written."""

from __future__ import annotations

import http.client
import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_ERRORS = {
    429: ("es_rejected_execution_exception", "rejected execution: write queue full (chaos proxy)"),
    502: ("bad_gateway", "chaos proxy: upstream unavailable"),
    503: ("unavailable_shards_exception", "chaos proxy: primary shard is not active"),
}


def _error(status: int) -> dict:
    kind, reason = _ERRORS[status]
    return {"type": kind, "reason": reason}


class FaultProxy:
    def __init__(self, upstream: str, seed: int = 0):
        u = urlsplit(upstream)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 9200
        self.rng = random.Random(seed)
        self.request_rate = 0.0  # share of bulk requests refused whole
        self.item_rate = 0.0  # share of bulk items refused 429
        self.always_refuse = None  # items of documents whose `source` holds this string: refused, every time
        self.always_status = 429
        self.injected = {"requests": 0, "items": 0}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _draw(self, rate: float) -> bool:
        with self._lock:
            return self.rng.random() < rate

    def _count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.injected[what] += n

    def _forward(self, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, list, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def _bulk(self, path: str, body: bytes, headers: dict) -> tuple[int, list, bytes]:
        lines = [ln for ln in body.split(b"\n") if ln.strip()]
        ops: list[tuple[bytes, bytes | None, dict]] = []
        i = 0
        while i < len(lines):
            action = json.loads(lines[i])
            op = next(iter(action))
            source = lines[i + 1] if op != "delete" else None
            ops.append((lines[i], source, action))
            i += 1 if source is None else 2
        refused: dict[int, int] = {}
        for n, (_, source, _action) in enumerate(ops):
            if source is None:
                continue
            doc = json.loads(source)
            doc = doc.get("doc", doc)
            if self.always_refuse and self.always_refuse in str(doc.get("source", "")):
                refused[n] = self.always_status
            elif self._draw(self.item_rate):
                refused[n] = 429
        self._count("items", len(refused))
        kept = [(a, s) for n, (a, s, _) in enumerate(ops) if n not in refused]
        items: list[dict] = []
        status, head, took = 200, [("Content-Type", "application/json")], 0
        if kept:
            payload = b"".join(a + b"\n" + (s + b"\n" if s is not None else b"") for a, s in kept)
            status, head, raw = self._forward("POST", path, payload, headers)
            if status != 200:
                return status, head, raw
            answer = json.loads(raw)
            items, took = answer["items"], answer.get("took", 0)
        merged, upstream = [], iter(items)
        for n, (_, _, action) in enumerate(ops):
            if n in refused:
                op, meta = next(iter(action.items()))
                index = meta.get("_index") or path.strip("/").split("/")[0]
                merged.append(
                    {op: {"_index": index, "_id": meta.get("_id"), "status": refused[n], "error": _error(refused[n])}}
                )
            else:
                merged.append(next(upstream))
        errors = bool(refused) or any(next(iter(it.values())).get("error") for it in merged)
        return status, head, json.dumps({"took": took, "errors": errors, "items": merged}).encode()

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                if "_bulk" in self.path and body and proxy._draw(proxy.request_rate):
                    proxy._count("requests")
                    code = proxy.rng.choice((429, 502, 503))
                    status, head = code, [("Content-Type", "application/json")]
                    raw = json.dumps({"error": {**_error(code), "root_cause": [_error(code)]}, "status": code}).encode()
                elif "_bulk" in self.path and body:
                    status, head, raw = proxy._bulk(self.path, body, headers)
                else:
                    status, head, raw = proxy._forward(self.command, self.path, body, headers)
                self.send_response(status)
                for k, v in head:
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "x-elastic-product"):
                        self.send_header(k, v)
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

        return Handler
