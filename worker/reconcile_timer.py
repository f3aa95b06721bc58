"""The reconciler on a timer in every worker, one run at a time across the deployment: no beat needed.

Each `inferq worker` main process runs a `ReconcileTimer` thread (never a pool child, which may be busy
with a part for minutes): right at start, then every `reconcile_interval_seconds`, it calls
`run_if_due`. That takes the deployment's reconciler lock (worker/reconcile_lock.py) without waiting,
skips the turn when another process holds it or finished a run less than half an interval ago, and
otherwise reconciles (worker/reconciler.py) and records when (shared/reconciler_state.py). So with N
workers the reconciler runs about once or twice an interval, and a part whose holder died is sent again
within its lease plus one interval while any worker lives. Beat's reconcile task goes through
`run_if_due` too: it is one more caller, no longer the only one.
"""

from __future__ import annotations

import logging
import threading

from inferq.shared.db import read_scope, session_scope
from inferq.shared.models import utcnow
from inferq.shared.reconciler_state import read_last_run, record_run
from inferq.shared.settings import Settings
from inferq.worker.reconcile_lock import reconcile_lock
from inferq.worker.reconciler import ReconcileReport, reconcile

log = logging.getLogger(__name__)

STOP_SECONDS = 5  # a run still going at exit dies with the process (a SQLite lock then expires)


def min_gap_seconds(settings: Settings) -> float:
    """A run this soon after the last one is skipped: many workers do not multiply the runs."""
    return settings.reconcile_interval_seconds / 2


def run_if_due(settings: Settings, who: str, *, min_gap: float | None = None) -> ReconcileReport | None:
    """Reconcile unless another process is at it or did it less than `min_gap` seconds ago (default
    `min_gap_seconds`); returns the report, or None when skipped. Database errors propagate."""
    gap = min_gap_seconds(settings) if min_gap is None else min_gap
    with reconcile_lock(settings, who) as taken:
        if not taken:
            log.debug("reconciler: another process holds the lock; skipping this turn")
            return None
        with read_scope(settings) as session:
            age = read_last_run(session).age_seconds(utcnow())
        if age is not None and age < gap:
            return None
        report = reconcile(settings)
        with session_scope(settings) as session:
            record_run(session, who)
        return report


class ReconcileTimer(threading.Thread):
    """Calls `run_if_due` at start and every interval until stopped; an error is logged, never fatal."""

    def __init__(self, settings: Settings, who: str) -> None:
        super().__init__(name="inferq-reconciler", daemon=True)
        self.settings = settings
        self.who = who
        self.done = threading.Event()

    def run(self) -> None:
        while True:
            self.tick()
            if self.done.wait(self.settings.reconcile_interval_seconds):
                return

    def tick(self) -> ReconcileReport | None:
        try:
            return run_if_due(self.settings, self.who)
        except Exception as e:  # the database or broker may be briefly down: the next turn tries again
            log.warning(
                "reconciler run failed; trying again in %d s: %s", self.settings.reconcile_interval_seconds, e
            )
            return None

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=STOP_SECONDS)
