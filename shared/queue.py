"""The Celery app, its queues and task names, and the senders the API and workers use.

Redis (or the embedded filesystem broker) only carries messages: every message names a row in SQL,
and a lost message is re-sent by the reconciler from what the rows say.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from celery import Celery
from kombu import Queue

from inferq.shared.job_types import JobType
from inferq.shared.settings import Settings, get_settings

log = logging.getLogger(__name__)

QUEUE_CONTROL = "control"
QUEUE_INFERENCE = "inference"
QUEUE_TRAINING = "training"
ALL_QUEUES = (QUEUE_CONTROL, QUEUE_INFERENCE, QUEUE_TRAINING)

TASK_PLAN = "inferq.plan_job"
TASK_RUN_PART = "inferq.run_part"
TASK_FINALIZE = "inferq.finalize_job"
TASK_RECONCILE = "inferq.reconcile"
TASK_TRAIN = "inferq.train_job"
TASK_WEBHOOK = "inferq.deliver_webhook"
TASK_RETENTION = "inferq.retention_sweep"
# How often beat runs the retention sweep (worker.retention): deletions happen within this of their time.
RETENTION_SWEEP_SECONDS = 300

TASK_QUEUES = {
    TASK_PLAN: QUEUE_CONTROL,
    TASK_FINALIZE: QUEUE_CONTROL,
    TASK_RECONCILE: QUEUE_CONTROL,
    TASK_WEBHOOK: QUEUE_CONTROL,
    TASK_RETENTION: QUEUE_CONTROL,
    TASK_RUN_PART: QUEUE_INFERENCE,
    TASK_TRAIN: QUEUE_TRAINING,
}


def part_task(job_type: JobType) -> str:
    """The task that runs a part of a job of this type: a train job's one part trains, others predict."""
    return TASK_TRAIN if job_type is JobType.TRAIN else TASK_RUN_PART


class BrokerError(RuntimeError):
    """The broker did not take the message."""


def celery_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_ignore_result": True,
        "result_backend": None,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": settings.task_time_limit,
        # The soft limit warns a task 30 s before the hard one (a tenth of it for short limits; a fixed
        # 30 s would leave a 10 s limit a soft limit of 1 s and interrupt every part).
        "task_soft_time_limit": settings.task_time_limit - min(30, max(1, settings.task_time_limit // 10)),
        "task_queues": [Queue(q, routing_key=q) for q in ALL_QUEUES],
        "task_default_queue": QUEUE_CONTROL,
        "task_routes": {name: {"queue": queue} for name, queue in TASK_QUEUES.items()},
        "worker_hijack_root_logger": False,
        "worker_max_tasks_per_child": 200,
        # Optional: every worker runs the reconciler on its own timer (worker/reconcile_timer.py); beat's
        # reconcile is one more caller of it, and beat is needed only for the retention sweep.
        "beat_schedule": {
            "reconcile": {
                "task": TASK_RECONCILE,
                "schedule": float(settings.reconcile_interval_seconds),
                "options": {"queue": QUEUE_CONTROL, "expires": settings.reconcile_interval_seconds},
            },
            "retention": {
                "task": TASK_RETENTION,
                "schedule": float(RETENTION_SWEEP_SECONDS),
                "options": {"queue": QUEUE_CONTROL, "expires": RETENTION_SWEEP_SECONDS},
            },
        },
    }
    if settings.is_embedded_broker:
        base = settings.broker_dir
        for sub in ("queue", "processed", "control"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        config["broker_transport_options"] = {
            "data_folder_in": str(base / "queue"),
            "data_folder_out": str(base / "queue"),
            "processed_folder": str(base / "processed"),
            "control_folder": str(base / "control"),
            "store_processed": False,
        }
        config["worker_enable_remote_control"] = False
        config["beat_schedule_filename"] = str(base / "beat-schedule")
    else:
        config["broker_transport_options"] = {"visibility_timeout": settings.visibility_timeout}
        # Task events let Flower (docker-compose.yml) show workers, tasks and their outcomes.
        config["worker_send_task_events"] = True
        config["task_send_sent_event"] = True
    return config


def make_celery(settings: Settings) -> Celery:
    app = Celery("inferq", set_as_current=False)
    app.config_from_object(celery_config(settings))
    return app


@functools.lru_cache(maxsize=8)
def _celery_for(settings: Settings) -> Celery:
    return make_celery(settings)


def get_celery(settings: Settings | None = None) -> Celery:
    """The sending app for these settings (one per process and broker)."""
    return _celery_for(settings or get_settings())


def send(
    name: str,
    args: list[Any],
    *,
    priority: int | None = None,
    countdown: float | None = None,
    settings: Settings | None = None,
) -> None:
    """Publish one task message; BrokerError if the broker is unreachable."""
    try:
        get_celery(settings).send_task(
            name,
            args=args,
            queue=TASK_QUEUES[name],
            priority=priority,
            countdown=countdown,
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        )
    except Exception as e:  # kombu raises many connection error types
        raise BrokerError(f"broker unreachable: {e}") from e


def try_send(
    name: str, args: list[Any], *, countdown: float | None = None, settings: Settings | None = None
) -> bool:
    """Send after a commit; a failure is logged, not raised: the reconciler will re-send from SQL."""
    try:
        send(name, args, countdown=countdown, settings=settings)
    except BrokerError as e:
        log.warning("could not send %s%s now, the reconciler will: %s", name, args, e)
        return False
    return True


def ping_broker(settings: Settings | None = None) -> None:
    try:
        with get_celery(settings).connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as e:
        raise BrokerError(f"broker unreachable: {e}") from e
