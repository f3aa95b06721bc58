"""Tenants and their API keys. Keys are shown once, at creation; only their sha256 is stored."""

from __future__ import annotations

import hashlib

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from inferq.shared.errors import InvalidRequest
from inferq.shared.ids import new_api_key, new_id
from inferq.shared.models import ApiKey, Tenant, utcnow

PREFIX_LENGTH = 12  # "iq_" and 9 characters: enough to name a key in logs and `keys revoke`

# Built once: every authenticated request runs it, and building a statement costs more CPU than
# running a cached one (SQLAlchemy caches the compiled form by the statement's structure).
_LIVE_KEY_TENANT = select(ApiKey.tenant_id).where(
    ApiKey.key_hash == bindparam("key_hash"), ApiKey.revoked_at.is_(None)
)


def hash_key(key: str) -> str:
    """The stored form of an API key: its sha256 as 64 hex digits."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_prefix(key: str) -> str:
    return key[:PREFIX_LENGTH]


def get_or_create_tenant(session: Session, tenant_name: str) -> Tenant:
    name = tenant_name.strip()
    if not name or len(name) > 200:
        raise InvalidRequest("tenant name must be 1 to 200 characters", field="tenant")
    tenant = session.execute(select(Tenant).where(Tenant.name == name)).scalar_one_or_none()
    if tenant is None:
        tenant = Tenant(id=new_id("tenant"), name=name, created_at=utcnow())
        session.add(tenant)
        session.flush()
    return tenant


def create_tenant_key(session: Session, tenant_name: str) -> str:
    """Create the tenant if it is missing, and a new key for it. Returns the plaintext key."""
    tenant = get_or_create_tenant(session, tenant_name)
    key = new_api_key()
    session.add(
        ApiKey(
            id=new_id("key"),
            tenant_id=tenant.id,
            key_hash=hash_key(key),
            prefix=key_prefix(key),
            created_at=utcnow(),
        )
    )
    session.flush()
    return key


def tenant_for_key_hash(session: Session, key_hash: str) -> str | None:
    """The tenant id a live (not revoked) key belongs to, or None; the key given in its stored form
    (`hash_key`)."""
    tenant: str | None = session.execute(_LIVE_KEY_TENANT, {"key_hash": key_hash}).scalar_one_or_none()
    return tenant


def revoke_key(session: Session, key_or_prefix: str) -> int:
    """Revoke a key given whole or by its prefix. Returns how many keys were revoked (0 or 1).

    A prefix that names more than one live key is refused rather than revoking several.
    """
    value = key_or_prefix.strip()
    if not value:
        return 0
    ids = list(session.execute(select(ApiKey.id).where(ApiKey.key_hash == hash_key(value))).scalars())
    if not ids and len(value) <= PREFIX_LENGTH:
        ids = list(
            session.execute(
                select(ApiKey.id).where(ApiKey.prefix == value, ApiKey.revoked_at.is_(None))
            ).scalars()
        )
        if len(ids) > 1:
            raise InvalidRequest(f"prefix {value!r} matches {len(ids)} keys; give the whole key", field="key")
    if not ids:
        return 0
    result = session.execute(
        update(ApiKey).where(ApiKey.id == ids[0], ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
