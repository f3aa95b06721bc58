"""The Celery tasks: thin wrappers that hand a row id to the stage that owns it."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from sqlalchemy.exc import OperationalError

from inferq.shared.queue import (
    TASK_FINALIZE,
    TASK_PLAN,
    TASK_RECONCILE,
    TASK_RETENTION,
    TASK_RUN_PART,
    TASK_TRAIN,
    TASK_WEBHOOK,
)
from inferq.shared.settings import get_settings
from inferq.shared.storage import StorageError

log = logging.getLogger(__name__)

TASK_OPTIONS: dict[str, Any] = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}
# Dependencies that come back: retry with backoff instead of dropping the message.
TRANSIENT = (StorageError, OperationalError)


def _backoff(retries: int) -> int:
    return int(min(60, 2 ** (retries + 1)))


@shared_task(name=TASK_PLAN, bind=True, max_retries=5, **TASK_OPTIONS)
def plan_job(self: Any, job_id: str) -> None:
    from inferq.worker.planner import plan_job as plan

    try:
        plan(job_id, get_settings())
    except TRANSIENT as e:
        raise self.retry(exc=e, countdown=_backoff(self.request.retries)) from e


@shared_task(name=TASK_RUN_PART, bind=True, max_retries=10, **TASK_OPTIONS)
def run_part(self: Any, part_id: str) -> str:
    """Run one part (the one fair share picks); what came of it is in its rows and its job's events.
    No one reads a task result (`ignore_result`), but Celery logs what it returns: the outcome's value
    (`'done'`, `'skipped'`…) ends the task's log line, which operators (and the chaos tests) read."""
    from inferq.worker.runner import run_part as run

    settings = get_settings()
    # The broker's copy of a message it delivered before (Redis: visibility timeout, a lost worker).
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    try:
        return str(run(part_id, settings, fair=settings.fair_share, redelivered=redelivered))
    except TRANSIENT as e:
        raise self.retry(exc=e, countdown=_backoff(self.request.retries)) from e


@shared_task(name=TASK_TRAIN, bind=True, max_retries=10, **TASK_OPTIONS)
def train_job(self: Any, part_id: str) -> None:
    """One training job, start to end (or resumed after its last checkpoint), under the part's lease."""
    from inferq.worker.trainer import run_training

    try:
        run_training(part_id, get_settings())
    except TRANSIENT as e:
        raise self.retry(exc=e, countdown=_backoff(self.request.retries)) from e


@shared_task(name=TASK_FINALIZE, bind=True, max_retries=10, **TASK_OPTIONS)
def finalize_job(self: Any, job_id: str) -> str:
    from inferq.worker.finalizer import finalize_job as finalize

    try:
        return finalize(job_id, get_settings())
    except TRANSIENT as e:
        raise self.retry(exc=e, countdown=_backoff(self.request.retries)) from e


@shared_task(name=TASK_WEBHOOK, **TASK_OPTIONS)
def deliver_webhook(delivery_id: str) -> str:
    """Hands one attempt at a job's webhook to this process's delivery threads and returns at once
    (worker/webhook_pool.py); its retries are scheduled from the delivery row."""
    from inferq.worker import webhook_pool

    return "queued" if webhook_pool.submit(delivery_id, get_settings()) else "held"


@shared_task(name=TASK_RECONCILE, ignore_result=True)
def reconcile() -> int:
    """Beat's reconcile: one more caller of the workers' timed run (worker.reconcile_timer), so a turn
    that another process holds, or ran moments ago, is skipped."""
    from inferq.worker.lease import worker_name
    from inferq.worker.reconcile_timer import run_if_due

    report = run_if_due(get_settings(), f"beat {worker_name()}")
    return 0 if report is None else report.total()


@shared_task(name=TASK_RETENTION, ignore_result=True)
def retention_sweep() -> int:
    """Delete what is past its retention (worker.retention); the next run retries anything that failed."""
    from inferq.worker.retention import sweep

    return sweep(get_settings()).total()
