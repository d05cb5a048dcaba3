"""/docs and /redoc work offline, and the OpenAPI document describes the error bodies the API really sends."""

from __future__ import annotations

import re

import pytest

from api.schemas import InvalidRequest
from tests.unit.api_support import Api


@pytest.fixture
def api(tmp_path):
    return Api(tmp_path)


@pytest.mark.parametrize("page, script", [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")])
def test_the_documentation_pages_load_their_scripts_from_the_server_itself(api, page, script):
    r = api.client.get(page)
    assert r.status_code == 200 and script in r.text
    sources = re.findall(r'src="([^"]+)"', r.text) + re.findall(r'href="([^"]+\.css)"', r.text)
    assert sources and all(not s.startswith(("http:", "https:", "//")) for s in sources), sources
    for src in sources:
        assert api.client.get(src).status_code == 200, src


def test_the_document_names_the_auth_schemes_and_every_422_is_the_body_sent(api):
    doc = api.client.get("/openapi.json").json()
    assert set(doc["components"]["securitySchemes"]) == {"APIKeyHeader", "HTTPBearer"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    invalid = [
        op["responses"]["422"]["content"]["application/json"]["schema"]
        for methods in doc["paths"].values()
        for op in methods.values()
        if "422" in op.get("responses", {})
    ]
    assert invalid and all(s == {"$ref": "#/components/schemas/InvalidRequest"} for s in invalid)
    assert set(doc["components"]["schemas"]["InvalidRequest"]["required"]) == {"error", "message"}


def test_a_real_422_matches_the_published_schema(api):
    r = api.client.get("/v1/search", params={"q": "x", "k": "many"}, headers=api.key("acme"))
    assert r.status_code == 422
    body = InvalidRequest.model_validate(r.json())
    assert body.error == "invalid_request" and body.problems[0].where == "query.k"
    assert body.message.startswith("query.k: ")
