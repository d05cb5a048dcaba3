"""Every error the API returns is JSON: {"error": code, "message": what went wrong and what to do}."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipeline.errors import ConfigError, ServiceUnavailable

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "service_unavailable",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, **extra):
        super().__init__(message)
        self.status, self.message = status, message
        self.code = code or _CODES.get(status, "error")
        self.extra = extra


def error_body(status: int, message: str, code: str | None = None, **extra) -> dict:
    return {"error": code or _CODES.get(status, "error"), "message": message, **extra}


def _json(status: int, body: dict, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _json(exc.status, error_body(exc.status, exc.message, exc.code, **exc.extra), headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        return _json(exc.status_code, error_body(exc.status_code, message), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError):
        problems = [
            {"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")} for e in exc.errors()
        ]
        first = problems[0] if problems else {"where": "request", "problem": "invalid"}
        return _json(422, error_body(422, f"{first['where']}: {first['problem']}", problems=problems))

    @app.exception_handler(ServiceUnavailable)
    async def _unavailable(_request: Request, exc: ServiceUnavailable):
        return _json(503, error_body(503, f"{exc}; try again shortly"), {"Retry-After": "5"})

    @app.exception_handler(OperationalError)
    async def _database(_request: Request, exc: OperationalError):
        # unreachable, locked past its timeout, or not migrated ("no such table"): the operator's to fix
        log.error("database error: %s", exc)
        return _json(
            503,
            error_body(503, "the database is unavailable or not migrated (docpipe db upgrade); try again shortly"),
            {"Retry-After": "5"},
        )

    @app.exception_handler(ConfigError)
    async def _config(_request: Request, exc: ConfigError):
        return _json(503, error_body(503, f"docpipe is misconfigured: {exc}", "misconfigured"))


def publish_error_bodies(app: FastAPI, *amend: Callable[[dict], None]) -> None:
    """The OpenAPI document describes 422 bodies as they are sent ({"error", "message", "problems"}, the
    InvalidRequest schema), not as FastAPI's default {"detail": [...]}, so generated clients parse them.
    Each of `amend` may then add what middleware does to the document (headers, answers)."""
    from fastapi.openapi.utils import get_openapi
    from pydantic.json_schema import models_json_schema

    from api.schemas import InvalidRequest

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        _, defs = models_json_schema([(InvalidRequest, "validation")], ref_template="#/components/schemas/{model}")
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(defs.get("$defs", {}))
        ref = {"$ref": "#/components/schemas/InvalidRequest"}
        for methods in doc.get("paths", {}).values():
            for operation in methods.values():
                invalid = operation.get("responses", {}).get("422")
                if invalid is not None:
                    invalid["content"] = {"application/json": {"schema": ref}}
                    invalid.setdefault("description", "Invalid request")
        for default in ("HTTPValidationError", "ValidationError"):
            schemas.pop(default, None)
        _common_answers(doc)
        for step in amend:
            step(doc)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def _common_answers(doc: dict) -> None:
    """What any /v1 operation may answer besides its own: 400 for a body that cannot be parsed, 503 while the
    database or the search server is away (the handlers above)."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, methods in doc.get("paths", {}).items():
        if not path.startswith("/v1/"):
            continue
        for operation in methods.values():
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation:
                responses.setdefault("400", {"description": "The body cannot be parsed", "content": error})
            responses.setdefault(
                "503", {"description": "The database or the search server is unavailable; retry", "content": error}
            )
