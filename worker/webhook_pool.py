"""Webhook deliveries run on a small pool of threads in each worker process, off the inference path.

The default worker takes the control, inference and training queues with concurrency 1, so a delivery
run by the `deliver_webhook` task itself held that one process for as long as the receiver liked, and
every tenant's parts waited behind it. Now the task only hands the delivery id to this pool
(`INFERQ_WEBHOOK_THREADS` threads per process, made on first use in the process that runs tasks, i.e.
after a prefork child is forked) and returns at once; the attempt runs on a pool thread, bounded by
`INFERQ_WEBHOOK_TIMEOUT_SECONDS` in total (`worker/webhooks.py`). A delivery mostly waits on the network
(the GIL is released), so it costs inference nothing.

Why not a queue of their own: it would need its own consumer process, which every deployment (compose,
`inferq up`, the README's worker lines) would have to run, and a slow receiver would still hold that
process's slot from other tenants' deliveries; threads in every worker need no new process.

Nothing is lost with the message acknowledged early: the outbox row stays `pending` until an attempt is
recorded, so deliveries that were waiting or in flight in a process that dies are re-sent by the
reconciler once overdue, and `shared.webhooks.claim` lets only one attempt run however many copies of a
message arrive. The same holds when the backlog is full (`MAX_BACKLOG_PER_THREAD` waiting per thread):
the id is dropped here and the reconciler sends it again.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from inferq.shared.settings import Settings

log = logging.getLogger(__name__)

MAX_BACKLOG_PER_THREAD = 64


class DeliveryPool:
    """The process's delivery threads and the ids they hold (queued or running), each at most once."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="webhook")
        self._lock = threading.Lock()
        self._held: set[str] = set()

    def submit(self, delivery_id: str, settings: Settings) -> bool:
        """Queue one attempt; False when it is already held here or the backlog is full."""
        with self._lock:
            if delivery_id in self._held:
                return False
            if len(self._held) >= self.threads * (MAX_BACKLOG_PER_THREAD + 1):
                log.warning("webhook backlog full; delivery %s is left to the reconciler", delivery_id)
                return False
            self._held.add(delivery_id)
        self._executor.submit(self._run, delivery_id, settings)
        return True

    def _run(self, delivery_id: str, settings: Settings) -> None:
        from inferq.worker.webhooks import deliver

        try:
            deliver(delivery_id, settings)
        except Exception:  # the row stays pending: the reconciler sends it again
            log.exception("webhook delivery %s failed; the reconciler will retry it", delivery_id)
        finally:
            with self._lock:
                self._held.discard(delivery_id)

    def shutdown(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=not wait)


_lock = threading.Lock()
_pool: tuple[int, DeliveryPool] | None = None  # (pid, pool): a forked child makes its own


def get_pool(settings: Settings) -> DeliveryPool:
    global _pool
    with _lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), DeliveryPool(settings.webhook_threads))
        return _pool[1]


def submit(delivery_id: str, settings: Settings) -> bool:
    """Hand one delivery attempt to this process's pool; returns at once."""
    return get_pool(settings).submit(delivery_id, settings)


def shutdown(wait: bool = True) -> None:
    """Stop this process's pool (at worker shutdown, and in tests): waits for attempts under way (each
    ends by its deadline) unless `wait` is False, which drops the waiting ones."""
    global _pool
    with _lock:
        pool, _pool = (_pool[1] if _pool is not None and _pool[0] == os.getpid() else None), None
    if pool is not None:
        pool.shutdown(wait)
