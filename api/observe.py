"""Every request gets an id (the caller's X-Request-ID, else a new one) that each log line of the request carries
and the response returns; its count and latency go to /metrics by route template and status."""

from __future__ import annotations

import logging
import re
import time
import uuid

from prometheus_client import Counter, Histogram
from prometheus_client.registry import CollectorRegistry
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline import logs

log = logging.getLogger("api.requests")
HEADER = "X-Request-ID"
TENANT_KEY = "docpipe.tenant"  # set in the scope by api/auth.py once the key is known
# a caller's id is kept when it is short and plain; anything else could forge or flood the log lines
ACCEPTED_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, float("inf"))


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.requests = Counter(
            "docpipe_http_requests",
            "HTTP requests by method, route and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "docpipe_http_request_duration_seconds",
            "Time from a request's arrival to its response's last byte, by method and route",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )


def request_id(scope: Scope) -> str:
    for name, value in scope.get("headers") or ():
        if name == b"x-request-id":
            given = value.decode("latin-1")
            if ACCEPTED_ID.fullmatch(given):
                return given
    return uuid.uuid4().hex


def route_of(scope: Scope) -> str:
    """The route's template (/v1/jobs/{job_id}), never the raw path: ids would make a series each."""
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


class RequestContext:
    """Pure ASGI (not BaseHTTPMiddleware), so streamed responses pass through untouched."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        logs.clear()
        logs.bind(request_id=rid)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            method, route = scope["method"], route_of(scope)
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(seconds)
            log.info(
                "request",
                extra={
                    "request_id": rid,
                    "tenant": scope.get(TENANT_KEY),
                    "method": method,
                    "route": route,
                    "path": scope.get("path"),
                    "status": status,
                    "ms": round(seconds * 1000, 1),
                },
            )
            logs.clear()
