"""Bearer API keys: `Authorization: Bearer <key>` names a tenant; missing, unknown or revoked → 401.

A key's tenant is looked up in the database, and a found one is remembered by this process for
`Settings.auth_cache_seconds` (`INFERQ_AUTH_CACHE_SECONDS`, default 2; 0 turns the cache off), counted from
before the lookup was sent. So a key revoked with `inferq keys revoke` is refused by every API process at
most that many seconds after the revocation commits. Unknown and revoked keys are never remembered: they
are asked about every time, and a new key works at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from flask import Blueprint, Flask, current_app, g, request

from inferq.api.context import read_db
from inferq.api.limits import check_rate_limit
from inferq.shared.errors import InferqError
from inferq.shared.settings import Settings
from inferq.shared.tenants import hash_key, tenant_for_key_hash

EXTENSION = "inferq_key_cache"
# More distinct live keys than this in one window and the cache starts over (it bounds memory only).
MAX_CACHED_KEYS = 10_000


class Unauthorized(InferqError):
    status = 401
    code = "unauthorized"


class KeyCache:
    """key hash → tenant id, each entry good for `seconds` from before the lookup that made it."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[str, float]] = {}

    def tenant(self, key_hash: str, lookup: Callable[[str], str | None]) -> str | None:
        """The tenant of a live key: remembered, or `lookup(key_hash)` (remembered if found)."""
        if self.seconds <= 0:
            return lookup(key_hash)
        asked_at = self._clock()
        entry = self._entries.get(key_hash)
        if entry is not None and asked_at < entry[1]:
            return entry[0]
        tenant = lookup(key_hash)
        with self._lock:
            if tenant is None:
                self._entries.pop(key_hash, None)
                return None
            if len(self._entries) >= MAX_CACHED_KEYS:
                self._entries = {h: e for h, e in self._entries.items() if asked_at < e[1]}
                if len(self._entries) >= MAX_CACHED_KEYS:
                    self._entries.clear()
            self._entries[key_hash] = (tenant, asked_at + self.seconds)
        return tenant


def install(app: Flask, settings: Settings) -> None:
    app.extensions[EXTENSION] = KeyCache(settings.auth_cache_seconds)


def _lookup(key_hash: str) -> str | None:
    with read_db() as session:
        return tenant_for_key_hash(session, key_hash)


def authenticate() -> None:
    """`before_request` hook: set `g.tenant_id` or refuse the request."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized(
            "missing API key: send the header 'Authorization: Bearer <api key>'", code="missing_api_key"
        )
    cache = current_app.extensions.get(EXTENSION)
    key_hash = hash_key(key)
    tenant = cache.tenant(key_hash, _lookup) if isinstance(cache, KeyCache) else _lookup(key_hash)
    if tenant is None:
        raise Unauthorized("the API key is unknown or revoked", code="invalid_api_key")
    g.tenant_id = tenant


def require_auth(blueprint: Blueprint) -> Blueprint:
    """Every route of `blueprint` needs a valid key, and counts against its tenant's rate limit."""
    blueprint.before_request(authenticate)
    blueprint.before_request(check_rate_limit)
    return blueprint
