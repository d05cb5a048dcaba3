"""Malformed bodies on every route that takes one answer 4xx, never 5xx: nesting past the recursion limit, numbers
past Python's digit limit, invalid UTF-8, truncated JSON and multipart, sent under each content type a route reads.
The routes come from walking app.routes, so a route added later is covered without touching this test."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from tests.unit.api_support import Api

BODY_METHODS = {"POST", "PUT", "PATCH"}
_DOC = b'{"documents": [{"id": "a", "text": "hello", "meta": {"n": %s}}]}'
BODIES = {
    "deep array": b"[" * 3000 + b"]" * 3000,
    "deep object": b'{"a":' * 3000 + b"1" + b"}" * 3000,
    "deep inside a batch": _DOC % (b"[" * 3000 + b"]" * 3000),
    "long number": _DOC % (b"9" * 5000),
    "long number at top": b"1" * 5000,
    "huge exponent": _DOC % b"1e999999",
    "invalid utf-8": b'{"documents": [{"id": "\xff\xfe", "text": "\xc3\x28"}]}',
    "utf-16 without bom": '{"documents": []}'.encode("utf-16-le"),
    "bom then json": b"\xef\xbb\xbf" + _DOC % b"1",
    "truncated": (_DOC % b"1")[:30],
    "NUL": b'{"documents": [{"id": "a\x00", "text": "x\\u0000"}]}',
    "empty": b"",
}
CONTENT_TYPES = [
    "application/json",
    "application/merge-patch+json",
    "multipart/form-data; boundary=xyz",
    "multipart/form-data",
    "application/x-www-form-urlencoded",
    "text/plain",
]
MULTIPART = {
    "truncated part": b'--xyz\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n\r\nhello',
    "bad filename": b'--xyz\r\nContent-Disposition: form-data; name="files"; filename="\xff\x00.json"\r\n\r\nx'
    b"\r\n--xyz--",
    "no headers end": b"--xyz\r\nContent-Disposition: form-data" + b"; a=b" * 5000,
}
PATH_VALUES = {"ticker": "ACME", "job_id": "0" * 32, "model_id": "1", "feed_id": "1", "doc_id": "0" * 32}


def _routes(routes):
    """Every route, descending into included routers and mounts."""
    for route in routes:
        inner = getattr(route, "original_router", None) or getattr(route, "routes", None)
        if inner is not None and not isinstance(route, APIRoute):
            yield from _routes(inner.routes if hasattr(inner, "routes") else inner)
        else:
            yield route


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    return Api(tmp_path_factory.mktemp("malformed"))


def _templates(app) -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for route in _routes(app.routes)
        for method in (getattr(route, "methods", None) or set()) & BODY_METHODS
    }


def _targets(app) -> list[tuple[str, str]]:
    fill = lambda m: PATH_VALUES.get(m.group(1), "x")  # noqa: E731
    return sorted((method, re.sub(r"\{(\w+)(?::\w+)?\}", fill, path)) for method, path in _templates(app))


def test_the_walk_finds_every_body_route_of_the_openapi_document(api):
    documented = {
        (method.upper(), path)
        for path, ops in api.app.openapi()["paths"].items()
        for method in ops
        if method.upper() in BODY_METHODS
    }
    assert len(documented) > 5 and documented <= _templates(api.app)


def test_malformed_bodies_get_a_4xx_on_every_route(api):
    key = api.key("malformed")
    client = TestClient(api.app, raise_server_exceptions=False)  # a crash is a 500 to count, not an error here
    failures = []
    for method, path in _targets(api.app):
        cases = [(ctype, name, body) for ctype in CONTENT_TYPES for name, body in BODIES.items()]
        cases += [("multipart/form-data; boundary=xyz", name, body) for name, body in MULTIPART.items()]
        for ctype, name, body in cases:
            response = client.request(method, path, content=body, headers={**key, "Content-Type": ctype})
            if response.status_code >= 500:
                failures.append(f"{method} {path} [{ctype}] {name}: {response.status_code} {response.text[:200]}")
    assert not failures, "\n".join(failures)


def test_a_deep_or_huge_batch_is_refused_with_its_reason(api):
    key = {**api.key("malformed-reason"), "Content-Type": "application/json"}
    deep = api.client.post("/v1/documents", content=BODIES["deep inside a batch"], headers=key)
    assert deep.status_code == 422 and deep.json()["error"] == "invalid_json"
    assert "nested too deeply" in deep.json()["message"]
    long = api.client.post("/v1/documents", content=BODIES["long number"], headers=key)
    assert long.status_code == 422 and "digits" in long.json()["message"]
