"""Who is calling: the tenant of the API key in the request. Nothing else decides the tenant."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError
from api.observe import TENANT_KEY
from pipeline.store import apikeys as keys

COOKIE = "docpipe_key"
# Declared for the OpenAPI document (so clients and the fuzzer know how to authenticate);
# auto_error=False lets a missing key fall through to our own JSON 401.
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key: docpipe keys create")
_bearer = HTTPBearer(auto_error=False, description="The same API key as a bearer token")


def presented_key(request: Request, header: str | None, bearer: HTTPAuthorizationCredentials | None) -> str | None:
    if header:
        return header
    if bearer is not None:
        return bearer.credentials
    return request.cookies.get(COOKIE)


def key_of(request: Request) -> str | None:
    """The key a request presents, read from its headers and cookies alone (for middleware)."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    bearer = credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None
    return request.headers.get("x-api-key") or bearer or request.cookies.get(COOKIE)


def tenant_for(request: Request, key: str | None) -> str | None:
    ctx = request.app.state.ctx
    with ctx.session() as session:
        return keys.authenticate(session, key)


def require_tenant(
    request: Request,
    header: str | None = Depends(_header),
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> str:
    tenant = tenant_for(request, presented_key(request, header, bearer))
    if tenant is None:
        raise ApiError(
            401,
            "a valid API key is required: send it as X-API-Key or Authorization: Bearer "
            "(create one with `docpipe keys create --tenant T`)",
        )
    request.scope[TENANT_KEY] = tenant  # for the request's log line (api/observe.py)
    return tenant


def is_admin(settings, tenant: str) -> bool:
    """Whether `tenant` may act on what all tenants share (the index versions): DOCPIPE_API_ADMIN_TENANTS."""
    return tenant in {t.strip() for t in settings.api.admin_tenants.split(",") if t.strip()}


def require_admin(request: Request, tenant: str = Depends(require_tenant)) -> str:
    if not is_admin(request.app.state.ctx.settings, tenant):
        raise ApiError(
            403,
            f"tenant {tenant} may not act on the shared index: use a key of a tenant in DOCPIPE_API_ADMIN_TENANTS",
        )
    return tenant
