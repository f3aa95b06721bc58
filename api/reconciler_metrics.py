"""`inferq_reconciler_*`: when a process last ran the reconciler (shared/reconciler_state.py), read
from SQL at scrape time, and whether it is overdue (no run for several intervals: no live worker)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from inferq.shared.db import read_scope
from inferq.shared.models import utcnow
from inferq.shared.reconciler_state import STALE_INTERVALS, read_last_run
from inferq.shared.settings import Settings

log = logging.getLogger(__name__)


class ReconcilerCollector(Collector):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        try:
            with read_scope(self.settings) as session:
                last = read_last_run(session)
        except SQLAlchemyError as e:  # inferq_database_up says so already
            log.debug("metrics: reconciler state unavailable: %s", e)
            return
        now = utcnow()
        if last.at is not None:
            yield GaugeMetricFamily(
                "inferq_reconciler_last_run_timestamp_seconds",
                "Unix time at which a process last finished a reconciler run",
                value=last.at.timestamp(),
            )
            yield GaugeMetricFamily(
                "inferq_reconciler_last_run_age_seconds",
                "Seconds since a process last finished a reconciler run",
                value=last.age_seconds(now) or 0.0,
            )
        yield GaugeMetricFamily(
            "inferq_reconciler_overdue",
            f"1 when no process has run the reconciler for {STALE_INTERVALS} intervals (or ever): "
            "no live worker, or every run fails",
            value=1 if last.overdue(self.settings.reconcile_interval_seconds, now) else 0,
        )
