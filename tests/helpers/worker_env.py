"""The worker's own code in the test's process: its environment, and an in-process Celery worker.

The worker's stages (planner, runner, finalizer) and its Celery tasks read `get_settings()`, that is the
INFERQ_* environment. `worker_env` is that environment for the servers of a test's `Settings`, and
`in_process_worker` runs the tasks in a thread of the test. The fixtures built on them live in
`tests/conftest.py`: ``make_worker_settings``, ``worker_settings``, ``celery_worker`` and
``training_worker``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery.contrib.testing.worker import TestWorkController, start_worker

from inferq.shared import queue
from inferq.shared.settings import Settings
from inferq.worker.main import build_worker_app

# Heartbeats every second and leases of 10 s: a part whose worker is gone is taken again quickly.
QUICK_LEASES = {"INFERQ_HEARTBEAT_SECONDS": "1", "INFERQ_LEASE_SECONDS": "10"}


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The INFERQ_* variables of `settings`' data dir, database, broker and storage, one torch thread,
    then `extra` (e.g. ``INFERQ_PART_RECORDS="20"``)."""
    return {
        "INFERQ_DATA_DIR": str(settings.data_dir),
        "INFERQ_DATABASE_URL": settings.database_url,
        "INFERQ_BROKER_URL": settings.broker_url,
        "INFERQ_STORAGE_URL": settings.storage_url,
        "INFERQ_S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
        "INFERQ_TORCH_THREADS": "1",
        **extra,
    }


@contextmanager
def in_process_worker(settings: Settings, *queues: str, **options: Any) -> Iterator[TestWorkController]:
    """A Celery worker (solo pool) in a thread of this process, on `settings`, that takes the control and
    inference queues' messages and those of `queues`; `options` go to `start_worker` (e.g. loglevel)."""
    with start_worker(
        build_worker_app(settings),
        pool="solo",
        concurrency=1,
        perform_ping_check=False,
        shutdown_timeout=30,
        queues=[queue.QUEUE_CONTROL, queue.QUEUE_INFERENCE, *queues],
        **options,
    ) as worker:
        yield worker
