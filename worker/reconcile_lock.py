"""One reconciler run at a time across the deployment, without waiting: a process that finds the lock
taken skips its turn (the holder is doing the work).

- Postgres: a transaction-level advisory lock on `ADVISORY_KEY`, tried on a connection of its own and
  held for the run; it goes when that transaction ends, or with the connection when its process dies.
- SQLite: the `reconciler_state` row's `holder` and `held_until`, taken by compare-and-set across every
  process that opens the file. A holder that dies mid-run leaves it until it expires (`ttl_seconds`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from inferq.shared.db import get_engine, session_scope
from inferq.shared.models import ReconcilerState, utcnow
from inferq.shared.reconciler_state import ROW_ID, ensure_row
from inferq.shared.settings import Settings

log = logging.getLogger(__name__)

ADVISORY_KEY = 0x696E_6671_7263_0001  # "infqrc" + 1: any fixed bigint no other code uses
MIN_TTL_SECONDS = 60


def lock_ttl_seconds(settings: Settings) -> int:
    """How long a SQLite lock outlives a holder that died: well above any run's length."""
    return max(MIN_TTL_SECONDS, 2 * settings.reconcile_interval_seconds)


@contextmanager
def reconcile_lock(settings: Settings, holder: str) -> Iterator[bool]:
    """Try to take the deployment's reconciler lock: yields True when this caller holds it until the
    block ends, False when another process holds it (the block should then do nothing)."""
    if settings.is_sqlite:
        with _row_lock(settings, holder, lock_ttl_seconds(settings)) as taken:
            yield taken
    else:
        with _advisory_lock(settings) as taken:
            yield taken


@contextmanager
def _advisory_lock(settings: Settings) -> Iterator[bool]:
    with get_engine(settings).connect() as conn, conn.begin():
        taken = bool(conn.execute(select(func.pg_try_advisory_xact_lock(ADVISORY_KEY))).scalar())
        yield taken  # the commit or rollback at the end of the block releases it


@contextmanager
def _row_lock(settings: Settings, holder: str, ttl_seconds: int) -> Iterator[bool]:
    token = f"{holder[:160]} {uuid.uuid4().hex[:12]}"  # this attempt alone: a late release frees nothing else
    now = utcnow()
    with session_scope(settings) as session:
        ensure_row(session)
        result = session.execute(
            update(ReconcilerState)
            .where(
                ReconcilerState.id == ROW_ID,
                or_(ReconcilerState.holder.is_(None), ReconcilerState.held_until < now),
            )
            .values(holder=token, held_until=now + timedelta(seconds=ttl_seconds))
        )
        taken = result.rowcount == 1  # type: ignore[attr-defined]
    try:
        yield taken
    finally:
        if taken:
            _release_row(settings, token)


def _release_row(settings: Settings, token: str) -> None:
    try:
        with session_scope(settings) as session:
            session.execute(
                update(ReconcilerState)
                .where(ReconcilerState.id == ROW_ID, ReconcilerState.holder == token)
                .values(holder=None, held_until=None)
            )
    except SQLAlchemyError as e:  # it expires on its own
        log.warning("could not release the reconciler lock (it expires by itself): %s", e)
