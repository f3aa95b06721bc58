"""A part's lease on the worker side, for prediction parts (worker.runner) and training (worker.trainer).

Middleware around the work of one attempt: `claim` takes the lease, `held` runs the heartbeat thread
while the work runs (it extends the lease, publishes progress and flags a lost lease or a stopped job),
and the attempt ends in one of: `complete` (the part is done), `give_up` (it failed too often: its
records are errors), `release_for_retry` (it raised: it runs again after a backoff), `hand_back` (not
the part's fault: the attempt does not count) or `stopped` (the heartbeat flagged it). The state writes
themselves are `shared.jobs`'s; broker messages go only after their transaction commits.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from inferq.shared import jobs, queue
from inferq.shared.db import session_scope
from inferq.shared.enums import ValueEnum
from inferq.shared.jobs import FanIn, Lease
from inferq.shared.logs import log_ids
from inferq.shared.settings import Settings

log = logging.getLogger(__name__)

RETRY_BACKOFF_CAP_SECONDS = 30  # a failed attempt runs again after 2**attempts seconds, at most this
COMMIT_RETRY_FIRST_DELAY = 0.5  # `complete` while the database is briefly down: first wait …
COMMIT_RETRY_MAX_DELAY = 5.0  # … doubling up to this, for up to a lease
HEARTBEAT_JOIN_SECONDS = 10


class Outcome(ValueEnum):
    """What one run of a part (or a training job) came to."""

    DONE = "done"
    FAILED = "failed"  # given up: its records are errors (a training job: the job failed)
    SKIPPED = "skipped"  # not claimable: another worker holds it, it ran already, or the job stopped
    LOST = "lost"  # the lease was taken over: this attempt's work is dropped
    RELEASED = "released"  # handed back: it runs again (or the job stopped while it ran)


class Stop(ValueEnum):
    """Why the heartbeat told the work to stop."""

    LEASE_LOST = "lease_lost"
    CANCELLED = "cancelled"


class LeaseLost(RuntimeError):
    """Another worker holds the part now, or the job stopped: this attempt must not write."""


@dataclass
class Progress:
    """Shared between the work loop and the heartbeat thread."""

    completed: int = 0
    failed: int = 0
    stop: Stop | None = None  # set by the heartbeat: the loop must stop
    lock: threading.Lock = field(default_factory=threading.Lock)

    def counts(self) -> tuple[int, int]:
        with self.lock:
            return self.completed, self.failed


def worker_name() -> str:
    """The lease owner: `host:pid[:gpuN]`."""
    return f"{socket.gethostname()}:{os.getpid()}" + (
        f":gpu{os.environ['CUDA_VISIBLE_DEVICES']}" if os.environ.get("CUDA_VISIBLE_DEVICES") else ""
    )


def claim(
    session: Session, part_id: str, settings: Settings, *, fair: bool = False, redelivered: bool = False
) -> Lease | None:
    """Take the lease in the caller's transaction. `fair`: a run_part message is permission to run one
    part and `part_id` only names one (`jobs.claim_fair_part`); `redelivered`: the broker's copy of a
    message delivered before."""
    if fair:
        return jobs.claim_fair_part(
            session, part_id, worker_name(), settings.lease_seconds, redelivered=redelivered
        )
    return jobs.claim_part(session, part_id, worker_name(), settings.lease_seconds)


def lost_too_often(attempts: int, settings: Settings) -> bool:
    """Claimed more often than attempts allow: earlier attempts killed their workers (out of memory?)."""
    return attempts > settings.max_part_attempts


def out_of_attempts(attempts: int, settings: Settings) -> bool:
    """This attempt, failing, was the last one allowed."""
    return attempts >= settings.max_part_attempts


def retry_backoff(attempts: int) -> int:
    """Seconds before a failed attempt runs again."""
    return int(min(RETRY_BACKOFF_CAP_SECONDS, 2**attempts))


class Heartbeat(threading.Thread):
    """Extends the lease and publishes progress every few seconds; flags the loop to stop if it must."""

    def __init__(self, lease: Lease, progress: Progress, settings: Settings) -> None:
        super().__init__(name=f"heartbeat-{lease.part_id}", daemon=True)
        self.lease = lease
        self.progress = progress
        self.settings = settings
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.settings.heartbeat_seconds):
            self.beat()

    def beat(self) -> None:
        completed, failed = self.progress.counts()
        try:
            with session_scope(self.settings) as session:
                if not jobs.heartbeat(session, self.lease, self.settings.lease_seconds, completed, failed):
                    self.progress.stop = Stop.LEASE_LOST
                elif jobs.is_cancelled(session, self.lease.job_id):
                    self.progress.stop = Stop.CANCELLED
        except Exception as e:  # the database may be briefly down; the lease has slack for that
            log.warning(
                "heartbeat for part %s failed: %s",
                self.lease.part_id,
                e,
                extra=log_ids(self.lease.job_id, self.lease.part_id),
            )

    def stop(self) -> None:
        self.done.set()
        if self.is_alive():
            self.join(timeout=HEARTBEAT_JOIN_SECONDS)


@contextmanager
def held(lease: Lease, settings: Settings) -> Iterator[tuple[Progress, Heartbeat]]:
    """The heartbeat runs while the block does (stop it early with `Heartbeat.stop`, e.g. before a
    hand back); it is stopped when the block ends, however it ends."""
    progress = Progress()
    heartbeat = Heartbeat(lease, progress, settings)
    heartbeat.start()
    try:
        yield progress, heartbeat
    finally:
        heartbeat.stop()


def complete(
    lease: Lease,
    settings: Settings,
    completed: int,
    failed: int,
    out_key: str,
    err_key: str,
    stats: dict[str, Any],
) -> FanIn | None:
    """Mark the part done (None: the lease was lost). While the database is briefly down, keep trying
    for up to a lease: the objects are written, and the commit still counts unless another worker took
    the part meanwhile."""
    deadline = time.monotonic() + settings.lease_seconds
    delay = COMMIT_RETRY_FIRST_DELAY
    while True:
        try:
            with session_scope(settings) as session:
                return jobs.complete_part(session, lease, completed, failed, out_key, err_key, stats)
        except OperationalError as e:
            if time.monotonic() + delay > deadline:
                raise
            log.warning(
                "part %s: cannot commit yet, retrying in %.1fs: %s",
                lease.part_id,
                delay,
                e,
                extra=log_ids(lease.job_id, lease.part_id),
            )
            time.sleep(delay)
            delay = min(delay * 2, COMMIT_RETRY_MAX_DELAY)


def finalize_if_last(lease: Lease, fan_in: FanIn, settings: Settings) -> None:
    """The part that moved its job to finalizing sends the finalize message (its transaction committed)."""
    if fan_in.finalize:
        queue.try_send(queue.TASK_FINALIZE, [lease.job_id], settings=settings)


def give_up(lease: Lease, settings: Settings, code: str, message: str, err_key: str, out_key: str) -> Outcome:
    """The part failed too often: its records count as failed (its error file is written), and its job
    goes on. LOST when the lease was lost first."""
    with session_scope(settings) as session:
        fan_in = jobs.fail_part(session, lease, code, message, err_key, out_key)
    if fan_in is None:
        return Outcome.LOST
    finalize_if_last(lease, fan_in, settings)
    return Outcome.FAILED


def release_for_retry(lease: Lease, settings: Settings, attempts: int, message: str, task: str) -> Outcome:
    """An attempt raised: hand the part back (the attempt counts) and send `task` for it again after
    `retry_backoff`."""
    with session_scope(settings) as session:
        released = jobs.release_part(session, lease, f"attempt {attempts} failed: {message}")
    if released:
        queue.try_send(task, [lease.part_id], countdown=retry_backoff(attempts), settings=settings)
    return Outcome.RELEASED


def hand_back(lease: Lease, settings: Settings, reason: str, *, resend: str | None) -> None:
    """Release the part without counting the attempt (it was not the part's fault); `resend`: the task
    to send for it now (None: the caller's task retries with backoff and claims it again)."""
    try:
        with session_scope(settings) as session:
            released = jobs.release_part(session, lease, f"handed back: {reason}", count_attempt=False)
    except Exception as e:  # the lease lapses instead, and the reconciler re-sends the part
        log.warning(
            "could not hand part %s back (%s): %s",
            lease.part_id,
            reason,
            e,
            extra=log_ids(lease.job_id, lease.part_id),
        )
        return
    if released:
        log.warning(
            "part %s handed back: %s", lease.part_id, reason, extra=log_ids(lease.job_id, lease.part_id)
        )
        if resend is not None:
            queue.try_send(resend, [lease.part_id], settings=settings)


def stopped(lease: Lease, progress: Progress, settings: Settings, reason: str) -> Outcome:
    """The heartbeat stopped the work: a stopped job gets its part back (`reason` in its event); a lost
    lease belongs to another worker now, and nothing is written."""
    if progress.stop is Stop.CANCELLED:
        with session_scope(settings) as session:
            jobs.release_part(session, lease, reason)
        return Outcome.RELEASED
    return Outcome.LOST
