"""A worker's own Prometheus endpoint, on port `INFERQ_WORKER_METRICS_PORT` + `INFERQ_WORKER_INDEX`.

Tasks run in Celery's prefork pool children, which come and go (recycled every few hundred tasks), so
the endpoint cannot live in a child. `inferq worker` turns on prometheus_client's multiprocess mode
before Celery forks the pool: every child writes its metrics (`worker/metrics.py`) to files in a folder
of this worker process, and the endpoint, served by the worker's main process, adds them up (counters
and histograms of children that exited stay counted). `inferq worker --gpus all` numbers its
per-GPU processes 0, 1, … (`INFERQ_WORKER_INDEX`), so each has its own port; `inferq up` does the same.
Besides the workers' series the endpoint says `inferq_worker_up{worker,gpu} 1`.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from inferq.shared.settings import Settings

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LISTEN_ADDRESS = "0.0.0.0"


def enable_multiprocess() -> Path:
    """Make metrics created from now on, here and in children forked later, write to a shared folder.

    The folder is this process's own (removed at exit), unless the operator set PROMETHEUS_MULTIPROC_DIR.
    """
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
    else:
        directory = Path(tempfile.mkdtemp(prefix="inferq-worker-metrics-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        os.environ[MULTIPROC_ENV] = str(directory)
    # prometheus_client picks the value class when it is imported; choose again now that the folder is set.
    values.ValueClass = values.get_value_class()
    return directory


class _Up(Collector):
    def __init__(self, worker: str, gpu: str) -> None:
        self.worker = worker
        self.gpu = gpu

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "inferq_worker_up",
            "1 for this worker process, with the GPU it is pinned to",
            labels=["worker", "gpu"],
        )
        up.add_metric([self.worker, self.gpu], 1)
        yield up


class _ThisProcess(Collector):
    """The metrics of this process alone (multiprocess mode off: tests, `--pool solo`)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


@dataclass
class MetricsEndpoint:
    port: int
    server: WSGIServer
    thread: threading.Thread

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def endpoint_registry(worker: str, gpu: str, multiprocess_dir: Path | None) -> CollectorRegistry:
    registry = CollectorRegistry()
    if multiprocess_dir is not None:
        MultiProcessCollector(registry, path=str(multiprocess_dir))
    else:
        registry.register(_ThisProcess())
    registry.register(_Up(worker, gpu))
    return registry


def start(
    settings: Settings, worker: str, gpu: str, multiprocess_dir: Path | None = None
) -> MetricsEndpoint | None:
    """Serve the endpoint in a thread of this process; None when no port is configured or it is taken."""
    if not settings.worker_metrics_port:
        return None
    port = settings.worker_metrics_port + settings.worker_index
    registry = endpoint_registry(worker, gpu, multiprocess_dir)
    try:
        server, thread = start_http_server(port, addr=LISTEN_ADDRESS, registry=registry)
    except OSError as e:  # metrics are not worth refusing to work over
        log.error("worker %s: cannot serve metrics on port %d: %s", worker, port, e)
        return None
    log.info("worker %s: metrics on http://%s:%d/metrics", worker, LISTEN_ADDRESS, port)
    return MetricsEndpoint(port=port, server=server, thread=thread)
