"""Prometheus metrics of one app: HTTP requests and latency, and jobs and parts by state from SQL.

Each app has its own registry (several apps in one process, as in tests, never collide). Job counts
are computed from the database at scrape time, so every API process reports the same truth.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from flask import Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import InstrumentedAttribute, Session

from inferq.api.broker_metrics import BrokerCollector
from inferq.api.reconciler_metrics import ReconcilerCollector
from inferq.shared.db import session_scope
from inferq.shared.models import Job, JobPart
from inferq.shared.settings import Settings
from inferq.shared.states import JobStatus, PartStatus

log = logging.getLogger(__name__)

EXTENSION = "inferq_metrics"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def _count_by_status(session: Session, column: InstrumentedAttribute[str]) -> dict[str, int]:
    rows = session.execute(select(column, func.count()).group_by(column)).all()
    return {str(status): int(count) for status, count in rows}


class JobsCollector(Collector):
    """`inferq_jobs{status}`, `inferq_job_parts{status}`, `inferq_records_processed_total{outcome}` and
    `inferq_database_up`, read at scrape time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("inferq_database_up", "1 when the last scrape could read the database")
        try:
            with session_scope(self.settings) as session:
                job_counts = _count_by_status(session, Job.status)
                part_counts = _count_by_status(session, JobPart.status)
                completed, failed = session.execute(
                    select(func.coalesce(func.sum(Job.completed), 0), func.coalesce(func.sum(Job.failed), 0))
                ).one()
        except SQLAlchemyError as e:
            log.warning("metrics: database unavailable: %s", e)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        jobs = GaugeMetricFamily("inferq_jobs", "Jobs by state", labels=["status"])
        for job_status in JobStatus:
            jobs.add_metric([job_status.value], job_counts.get(job_status.value, 0))
        yield jobs
        parts = GaugeMetricFamily("inferq_job_parts", "Job parts by state", labels=["status"])
        for part_status in PartStatus:
            parts.add_metric([part_status.value], part_counts.get(part_status.value, 0))
        yield parts
        records = CounterMetricFamily(
            "inferq_records_processed",
            "Records of all jobs processed so far: ok (an output line) or error (an error line)",
            labels=["outcome"],
        )
        records.add_metric(["ok"], int(completed))
        records.add_metric(["error"], int(failed))
        yield records


class AppMetrics:
    def __init__(self, settings: Settings) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "inferq_http_requests",
            "HTTP requests by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "inferq_http_request_duration_seconds",
            "HTTP request latency by method and route (until the response starts)",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(JobsCollector(settings))
        self.registry.register(BrokerCollector(settings))
        self.registry.register(ReconcilerCollector(settings))

    def install(self, app: Flask) -> None:
        app.extensions[EXTENSION] = self
        app.before_request(self._start)
        app.after_request(self._observe)

    def _start(self) -> None:
        g.request_started = time.perf_counter()

    def _observe(self, response: Response) -> Response:
        started = g.get("request_started")
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        self.requests.labels(request.method, route, str(response.status_code)).inc()
        if started is not None:
            self.latency.labels(request.method, route).observe(time.perf_counter() - started)
        return response

    def render(self) -> Response:
        return Response(generate_latest(self.registry), status=200, content_type=CONTENT_TYPE_LATEST)


def current_metrics() -> AppMetrics:
    metrics = current_app.extensions[EXTENSION]
    assert isinstance(metrics, AppMetrics)
    return metrics
