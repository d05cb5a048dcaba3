"""Reading and writing a tenant's named settings (table tenant_settings)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from pipeline.store.models_tenants import TenantSetting


def get_setting(session: Session, tenant: str, name: str) -> dict | None:
    row = session.get(TenantSetting, (tenant, name))
    return dict(row.value) if row is not None else None


def put_setting(session: Session, tenant: str, name: str, value: dict) -> None:
    row = session.get(TenantSetting, (tenant, name))
    if row is None:
        session.add(TenantSetting(tenant=tenant, name=name, value=value))
    else:
        row.value = value
    session.flush()


def delete_setting(session: Session, tenant: str, name: str) -> bool:
    row = session.get(TenantSetting, (tenant, name))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True
