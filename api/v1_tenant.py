"""The caller's tenant settings: its documents' language (docs/languages.md)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from api.auth import require_tenant
from api.errors import ApiError
from api.schemas import Error
from pipeline.language import UnknownLanguage, set_tenant_language, tenant_language

router = APIRouter(prefix="/v1", tags=["tenant"])


class LanguageIn(BaseModel):
    language: str | None = Field(
        ..., max_length=16, description="ISO 639-1 code to fix (de, fr, es, zh, ...), or null to detect per document"
    )


class LanguageOut(BaseModel):
    tenant: str
    language: str | None = Field(description="The fixed language, or null: each document's own is detected")
    documents_changed: int = Field(
        0, description="Stored documents that took the fixed language (indexed by it at the next forced reindex)"
    )


@router.get("/tenant/language", response_model=LanguageOut, responses={401: {"model": Error}})
def get_language(request: Request, tenant: str = Depends(require_tenant)) -> dict:
    with request.app.state.ctx.session() as session:
        return {"tenant": tenant, "language": tenant_language(session, tenant), "documents_changed": 0}


@router.put("/tenant/language", response_model=LanguageOut, responses={401: {"model": Error}, 422: {"model": Error}})
def put_language(body: LanguageIn, request: Request, tenant: str = Depends(require_tenant)) -> dict:
    """Fix the language of the tenant's documents (stored ones too), or with null detect it per document again."""
    try:
        with request.app.state.ctx.session() as session:
            changed = set_tenant_language(session, tenant, body.language)
            current = tenant_language(session, tenant)
    except UnknownLanguage as exc:
        raise ApiError(422, str(exc)) from None
    return {"tenant": tenant, "language": current, "documents_changed": changed}
