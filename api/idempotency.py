"""`Idempotency-Key` on creating POSTs: a retried request gets the first result, never a duplicate.

The key is remembered per tenant and endpoint with a hash of the request, in the same transaction
that creates the resource. The same key with the same request returns the first resource (same id);
with a different request it is a 409 `idempotency_conflict`. Two racing requests with one key both
try to insert the key row; the loser's transaction (resource included) rolls back and it answers
with the winner's resource. Keys are forgotten after `KEY_TTL`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import request
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from inferq.api.context import db
from inferq.shared.errors import Conflict, InvalidRequest
from inferq.shared.models import IdempotencyKey, utcnow

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
KEY_TTL = timedelta(hours=24)

Resource = dict[str, Any]


@dataclass(frozen=True)
class Idempotency:
    """One request's idempotency identity; `key` is None when the client sent no header."""

    tenant_id: str
    endpoint: str
    key: str | None
    request_hash: str


def request_hash(*parts: Any) -> str:
    """A stable hash of what the request asks for (JSON-serializable parts, key order ignored)."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def header_key() -> str | None:
    """The `Idempotency-Key` header, or None; 400 when it is empty, too long or not printable."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidRequest(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters", field=HEADER, code="invalid_value"
        )
    return key


def find(session: Session, idem: Idempotency) -> str | None:
    """The id of the resource an earlier identical request created, or None; 409 on a different one."""
    if idem.key is None:
        return None
    row = session.get(IdempotencyKey, (idem.tenant_id, idem.endpoint, idem.key))
    if row is None:
        return None
    if row.created_at < utcnow() - KEY_TTL:
        forget(session, idem)
        return None
    if row.request_hash != idem.request_hash:
        raise Conflict(
            f"this {HEADER} was already used with a different request",
            field=HEADER,
            code="idempotency_conflict",
        )
    return row.resource_id


def remember(session: Session, idem: Idempotency, resource_id: str) -> None:
    if idem.key is None:
        return
    session.add(
        IdempotencyKey(
            tenant_id=idem.tenant_id,
            endpoint=idem.endpoint,
            key=idem.key,
            request_hash=idem.request_hash,
            resource_id=resource_id,
            created_at=utcnow(),
        )
    )
    session.flush()


def forget(session: Session, idem: Idempotency) -> None:
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.tenant_id == idem.tenant_id,
            IdempotencyKey.endpoint == idem.endpoint,
            IdempotencyKey.key == idem.key,
        )
    )


def create_once(
    idem: Idempotency,
    create: Callable[[Session], Resource],
    replay: Callable[[Session, str], Resource | None],
) -> tuple[Resource, bool]:
    """Create a resource at most once per key. Returns (resource, replayed).

    `create` adds the resource in the given session and returns its JSON object (with its `id`);
    `replay` loads the JSON object of an existing id, or None when it is gone (then the key is
    forgotten and the request creates anew).
    """
    for attempt in range(2):
        try:
            with db() as session:
                existing = find(session, idem)
                if existing is not None:
                    found = replay(session, existing)
                    if found is not None:
                        return found, True
                    forget(session, idem)
                resource = create(session)
                remember(session, idem, str(resource["id"]))
            return resource, False
        except IntegrityError:
            # Another request with the same key committed first: answer with its resource.
            if idem.key is None or attempt == 1:
                raise
    raise AssertionError("unreachable")
