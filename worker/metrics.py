"""What a worker process did, as Prometheus metrics: records, parts and their latency, batch sizes,
padding, model forward time, webhook attempts.

They live in prometheus_client's default registry and are made on first use, so that a worker that
turned on multiprocess mode first (`worker/metrics_server.py`) has its prefork children write them to
files its endpoint adds up. In any other process (tests, `POST /v1/embeddings` in the API) they are plain
in-process metrics.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
PADDING_BUCKETS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
FORWARD_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PART_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


@dataclass(frozen=True)
class WorkerMetrics:
    records: Counter
    parts: Counter
    part_seconds: Histogram
    batch_size: Histogram
    padding_ratio: Histogram
    forward_seconds: Histogram
    webhooks: Counter


@functools.lru_cache(maxsize=1)
def worker_metrics() -> WorkerMetrics:
    return WorkerMetrics(
        records=Counter(
            "inferq_worker_records",
            "Records finished by this worker: ok (an output line) or error (an error line)",
            ["task", "outcome"],
        ),
        parts=Counter("inferq_worker_parts", "Parts finished: done or failed (gave up)", ["task", "outcome"]),
        part_seconds=Histogram(
            "inferq_worker_part_seconds",
            "Latency of a part: read, predict and write its objects",
            ["task"],
            buckets=PART_BUCKETS,
        ),
        batch_size=Histogram(
            "inferq_worker_batch_size", "Items per model batch", ["task"], buckets=BATCH_SIZE_BUCKETS
        ),
        padding_ratio=Histogram(
            "inferq_worker_padding_ratio",
            "Share of a batch's padded token slots that is padding",
            ["task"],
            buckets=PADDING_BUCKETS,
        ),
        forward_seconds=Histogram(
            "inferq_worker_forward_seconds",
            "Model time of one batch (collate, forward under inference_mode, postprocess)",
            ["task", "device"],
            buckets=FORWARD_BUCKETS,
        ),
        webhooks=Counter(
            "inferq_worker_webhook_attempts",
            "Webhook attempts by outcome: delivered, pending (will retry), failed (gave up)",
            ["outcome"],
        ),
    )


def observe_batch(task: str, size: int, padding: float, seconds: float, device: str) -> None:
    m = worker_metrics()
    m.batch_size.labels(task).observe(size)
    m.padding_ratio.labels(task).observe(padding)
    m.forward_seconds.labels(task, device).observe(seconds)


def part_finished(task: str, outcome: str, ok: int, errors: int, seconds: float | None) -> None:
    m = worker_metrics()
    m.parts.labels(task, outcome).inc()
    if ok:
        m.records.labels(task, "ok").inc(ok)
    if errors:
        m.records.labels(task, "error").inc(errors)
    if seconds is not None:
        m.part_seconds.labels(task).observe(seconds)


def webhook_attempt(outcome: str) -> None:
    worker_metrics().webhooks.labels(outcome).inc()
