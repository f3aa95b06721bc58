"""When the reconciler last ran, kept in SQL so that every process sees it: the API's `/metrics` and
`/readyz`, `inferq status`, and the workers that decide whether a run is due (worker/reconcile_timer.py).

One row (`reconciler_state`, id 1) holds the time a run last finished and who ran it. No run for
`STALE_INTERVALS` reconcile intervals means that no worker is alive to run it (or every run fails):
lost messages and parts of dead workers then wait for the broker's visibility timeout.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from inferq.shared.db import read_scope
from inferq.shared.models import ReconcilerState, utcnow
from inferq.shared.settings import Settings

log = logging.getLogger(__name__)

ROW_ID = 1
# No run for this many intervals: the reconciler is overdue (a warning in /metrics and `inferq status`).
STALE_INTERVALS = 3


@dataclass(frozen=True)
class LastRun:
    at: datetime | None
    by: str | None

    def age_seconds(self, now: datetime) -> float | None:
        return None if self.at is None else max(0.0, (now - self.at).total_seconds())

    def overdue(self, interval_seconds: int, now: datetime) -> bool:
        """True when no process has finished a run for `STALE_INTERVALS` intervals (or ever)."""
        age = self.age_seconds(now)
        return age is None or age > STALE_INTERVALS * interval_seconds

    def warning(self, interval_seconds: int, now: datetime) -> str | None:
        if not self.overdue(interval_seconds, now):
            return None
        since = "ever" if self.at is None else f"for {self.age_seconds(now):.0f} s"
        return (
            f"no process has run the reconciler {since} (more than {STALE_INTERVALS} intervals of "
            f"{interval_seconds} s): is any `inferq worker` running? Parts of dead workers wait until then"
        )


def ensure_row(session: Session) -> None:
    """Insert the one row if it is missing (concurrent inserts are harmless)."""
    if session.get(ReconcilerState, ROW_ID) is not None:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(ReconcilerState).values(id=ROW_ID).on_conflict_do_nothing())


def read_last_run(session: Session) -> LastRun:
    row = session.get(ReconcilerState, ROW_ID)
    return LastRun(None, None) if row is None else LastRun(row.last_run_at, row.last_run_by)


def record_run(session: Session, by: str, at: datetime | None = None) -> None:
    ensure_row(session)
    session.execute(
        update(ReconcilerState)
        .where(ReconcilerState.id == ROW_ID)
        .values(last_run_at=at or utcnow(), last_run_by=by[:200])
    )


def describe(settings: Settings, now: datetime | None = None) -> dict[str, Any] | None:
    """The reconciler's state as JSON (for `/readyz` and `inferq status`); None if SQL cannot say."""
    now = now or utcnow()
    try:
        with read_scope(settings) as session:
            last = read_last_run(session)
    except SQLAlchemyError as e:
        log.warning("could not read the reconciler's last run: %s", e)
        return None
    age = last.age_seconds(now)
    return {
        "last_run_at": None if last.at is None else last.at.isoformat(),
        "last_run_by": last.by,
        "age_seconds": None if age is None else round(age, 1),
        "interval_seconds": settings.reconcile_interval_seconds,
        "overdue": last.overdue(settings.reconcile_interval_seconds, now),
        "warning": last.warning(settings.reconcile_interval_seconds, now),
    }
