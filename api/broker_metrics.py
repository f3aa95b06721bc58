"""`/metrics` series read from the broker at scrape time: queue depth per queue and workers by GPU.

Workers announce themselves next to the messages (`shared/worker_presence.py`), so every API process
reports the same numbers. Each worker also serves its own metrics (`worker/metrics_server.py`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from inferq.shared import worker_presence
from inferq.shared.queue import ALL_QUEUES, BrokerError
from inferq.shared.queue_depth import queue_depths
from inferq.shared.settings import Settings

log = logging.getLogger(__name__)


class BrokerCollector(Collector):
    """`inferq_broker_up`, `inferq_queue_depth{queue}` and `inferq_workers{gpu}`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("inferq_broker_up", "1 when the last scrape could read the broker")
        try:
            depths = queue_depths(self.settings)
        except BrokerError as e:
            log.warning("metrics: %s", e)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        depth = GaugeMetricFamily("inferq_queue_depth", "Messages waiting in each queue", labels=["queue"])
        for name in ALL_QUEUES:
            depth.add_metric([name], depths.get(name, 0))
        yield depth
        if not worker_presence.supported(self.settings):
            return
        try:
            live = worker_presence.live_workers(self.settings)
        except Exception as e:  # presence is best effort: a scrape never fails for it
            log.warning("metrics: cannot read worker presence: %s", e)
            return
        workers = GaugeMetricFamily(
            "inferq_workers",
            "Live worker processes by the GPU they are pinned to ('none': CPU)",
            labels=["gpu"],
        )
        for gpu, count in sorted(Counter(w.gpu for w in live).items()):
            workers.add_metric([gpu], count)
        yield workers
