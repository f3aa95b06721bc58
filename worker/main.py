"""One Celery worker process: prefork, concurrency 1, prefetch 1, JSON only, models cached in the child.

Its main process also runs the reconciler on a timer (worker/reconcile_timer.py), one run at a time
across the deployment, so recovery needs no beat process.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from celery import Celery, signals

from inferq.shared import worker_presence
from inferq.shared.db import dispose_engines
from inferq.shared.queue import ALL_QUEUES, QUEUE_CONTROL, QUEUE_INFERENCE, QUEUE_TRAINING, make_celery
from inferq.shared.settings import Settings, get_settings
from inferq.worker import metrics_server, webhook_pool

log = logging.getLogger(__name__)

DEFAULT_QUEUES = (QUEUE_CONTROL, QUEUE_INFERENCE, QUEUE_TRAINING)


def build_worker_app(settings: Settings) -> Celery:
    app = make_celery(settings)
    app.conf.imports = ("inferq.worker.tasks",)
    import inferq.worker.tasks  # noqa: F401  (registers the shared tasks)

    return app


@signals.worker_process_init.connect
def _child_init(**_: Any) -> None:
    """In each pool child: fresh DB connections (never share a forked pool) and the torch thread count."""
    dispose_engines(close=False)  # the parent's connections stay the parent's (its reconciler uses them)
    settings = get_settings()
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)


@signals.worker_process_shutdown.connect
@signals.worker_shutdown.connect
def _stop_deliveries(**_: Any) -> None:
    """Let webhook attempts under way end (each by its deadline); waiting ones are re-sent from SQL."""
    webhook_pool.shutdown(wait=True)


def worker_argv(
    queues: tuple[str, ...], name: str, concurrency: int, beat: bool, pool: str, loglevel: str
) -> list[str]:
    for q in queues:
        if q not in ALL_QUEUES:
            raise ValueError(f"unknown queue {q!r}; choose from {', '.join(ALL_QUEUES)}")
    argv = [
        "worker",
        f"--queues={','.join(queues)}",
        f"--hostname={name}",
        f"--concurrency={concurrency}",
        f"--pool={pool}",
        f"--loglevel={loglevel}",
        "--prefetch-multiplier=1",
        "--without-gossip",
        "--without-mingle",
    ]
    if beat:
        argv.append("--beat")
    return argv


def run_worker(
    settings: Settings,
    *,
    queues: tuple[str, ...] = DEFAULT_QUEUES,
    name: str | None = None,
    concurrency: int = 1,
    beat: bool = False,
    pool: str = "prefork",
    loglevel: str = "INFO",
) -> None:
    app = build_worker_app(settings)
    if beat and not settings.is_embedded_broker:  # not ./celerybeat-schedule wherever it was started
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        app.conf.beat_schedule_filename = str(settings.data_dir / "beat-schedule")
    name = name or f"inferq-{os.getpid()}@%h"
    full_name = name.replace("%h", socket.gethostname())
    stop_telemetry = start_telemetry(settings, full_name, queues)
    stop_reconciler = start_reconciler(settings, full_name)
    try:
        app.worker_main(worker_argv(queues, name, concurrency, beat, pool, loglevel))
    finally:
        stop_reconciler()
        stop_telemetry()


def start_telemetry(settings: Settings, name: str, queues: tuple[str, ...]) -> Callable[[], None]:
    """Before the pool forks: this worker's metrics endpoint (multiprocess mode, see
    worker/metrics_server.py) and its presence record (shared/worker_presence.py). Returns the stopper."""
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES") or "none"
    endpoint = None
    if settings.worker_metrics_port:
        endpoint = metrics_server.start(settings, name, gpu, metrics_server.enable_multiprocess())
    announcer = None
    if worker_presence.supported(settings):
        presence = worker_presence.Presence(name, gpu, socket.gethostname(), os.getpid(), ",".join(queues))
        announcer = worker_presence.Announcer(settings, presence)
        announcer.start()

    def stop() -> None:
        if announcer is not None:
            announcer.stop()
        if endpoint is not None:
            endpoint.close()

    return stop


def start_reconciler(settings: Settings, name: str) -> Callable[[], None]:
    """In the main process, before the pool forks: the reconciler timer (worker/reconcile_timer.py),
    whose first turn, right away, re-sends what SQL says is owed (e.g. after a broker restart).
    Returns the stopper."""
    from inferq.worker.reconcile_timer import ReconcileTimer

    timer = ReconcileTimer(settings, f"{name}:{os.getpid()}")
    timer.start()
    return timer.stop
