"""The job object of docs/API.md (`GET /v1/jobs/{id}`), shared by the API and the webhooks workers send.

Timestamps are ISO 8601 UTC with milliseconds and a `Z`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from inferq.shared.job_types import JobType
from inferq.shared.models import Job
from inferq.shared.states import JobStatus
from inferq.shared.throughput import overall_throughput
from inferq.shared.training_waits import waiting_reason


def timestamp(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with millisecond precision and a `Z`: `2026-01-02T03:04:05.678Z`."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def job_object(job: Job, throughput: dict[str, Any] | None = None) -> dict[str, Any]:
    """`throughput`: the live rates of a running job (shared.throughput.live_throughput); a finished
    prediction job shows its average over the whole run."""
    if throughput is None and job.type is not JobType.TRAIN:
        throughput = overall_throughput(job)
    error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
    waiting = job.waits_for_job_id if job.status is JobStatus.QUEUED else None  # model `train:<job_id>`
    return {
        "id": job.id,
        "object": "job",
        "type": job.type,
        "task": job.task,
        "status": job.status,
        "waiting_for": waiting,
        "status_reason": waiting_reason(waiting) if waiting else None,
        "model": job.model or None,  # a train job from scratch has no base model
        "input_file": job.input_file_id,
        "params": job.params or {},
        "priority": job.priority,
        "created_at": timestamp(job.created_at),
        "started_at": timestamp(job.started_at),
        "finished_at": timestamp(job.finished_at),
        "expires_at": timestamp(job.expires_at),
        "delete_after": timestamp(job.delete_after),  # null: kept until deleted (shared.retention)
        "progress": {"total": job.total, "completed": job.completed, "failed": job.failed},
        "output_file": job.output_file_id,
        "error_file": job.error_file_id,
        "result_model": job.result_model,
        "metrics": job.metrics,
        "throughput": throughput,
        "reproducibility": job.reproducibility,
        "error": error,
        "metadata": job.metadata_ or {},
        "webhook_url": job.webhook_url,
        "parent_job": job.parent_job_id,  # a retry child: the job whose records it runs again
        "retry_of": job.retry_of,  # errored | expired | cancelled
    }
