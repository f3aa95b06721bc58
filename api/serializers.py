"""Rows to the JSON objects of docs/API.md: files, jobs, job events, models. Timestamps are UTC with `Z`."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from inferq.api.contract.objects import BATCH_STATUS
from inferq.shared.batch_lines import batch_id
from inferq.shared.job_objects import (
    job_object as job_object,  # the core lives in shared: workers send it too
)
from inferq.shared.job_objects import timestamp
from inferq.shared.models import File, Job, JobEvent, ModelVersion
from inferq.shared.registry import ResolvedModel
from inferq.shared.states import JobStatus


def file_object(f: File) -> dict[str, Any]:
    return {
        "id": f.id,
        "object": "file",
        "filename": f.filename,
        "bytes": f.bytes,
        "purpose": f.purpose,
        "format": f.format,
        "records": f.records,
        "sha256": f.sha256,
        "created_at": timestamp(f.created_at),
        "status": "processed",  # OpenAI's file status: stored, scanned and ready to use
        "delete_after": timestamp(f.delete_after),  # null: kept until deleted (shared.retention)
    }


def event_object(event: JobEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "object": "job.event",
        "created_at": timestamp(event.created_at),
        "kind": event.kind,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "message": event.message,
        "data": event.data or {},
    }


def builtin_model_object(model: ResolvedModel) -> dict[str, Any]:
    return {
        "id": model.name,
        "object": "model",
        "name": model.name,
        "builtin": True,
        "task": model.task,
        "latest_version": model.version,
        "versions": [builtin_version_object(model)],
        "created_at": None,
    }


def builtin_version_object(model: ResolvedModel) -> dict[str, Any]:
    return {
        "id": model.ref,
        "object": "model.version",
        "name": model.name,
        "version": model.version,
        "task": model.task,
        "status": "ready",
        "labels": model.labels,
        "metrics": None,
        "config": model.config,
        "base_model": None,
        "hyperparameters": None,
        "created_by_job": None,
        "created_at": None,
        "weights_sha256": model.weights_sha256,
    }


def version_object(name: str, mv: ModelVersion) -> dict[str, Any]:
    return {
        "id": f"{name}:{mv.version}",
        "object": "model.version",
        "name": name,
        "version": mv.version,
        "task": mv.task,
        "status": mv.status,
        "labels": mv.labels,
        "metrics": mv.metrics,
        "config": mv.config or {},
        "base_model": mv.base_model,
        "hyperparameters": mv.hyperparameters,
        "created_by_job": mv.created_by_job,
        "created_at": timestamp(mv.created_at),
        "weights_sha256": mv.weights_sha256,
    }


def tenant_model_object(name: str, created_at: datetime, versions: list[ModelVersion]) -> dict[str, Any]:
    """A tenant's model: its versions oldest first; `latest_version` is what the bare name resolves to."""
    ready = [mv for mv in versions if mv.status == "ready"]
    latest = ready[-1] if ready else versions[-1]
    return {
        "id": name,
        "object": "model",
        "name": name,
        "builtin": False,
        "task": latest.task,
        "latest_version": ready[-1].version if ready else None,
        "versions": [version_object(name, mv) for mv in versions],
        "created_at": timestamp(created_at),
    }


def unix_seconds(value: datetime | None) -> int | None:
    """OpenAI's timestamps: whole seconds since the Unix epoch."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp())


def batch_object(job: Job, entered: dict[str, datetime]) -> dict[str, Any]:
    """A batch job as OpenAI's Batch object; `entered` holds when the job entered finalizing and
    cancelling (from its events), the states its row has no column for."""
    info = (job.params or {}).get("openai_batch") or {}
    status = job.status
    finished = unix_seconds(job.finished_at)

    def at_end(state: JobStatus) -> int | None:
        return finished if status == state else None

    errors = None
    if status == JobStatus.FAILED and job.error_code:
        errors = {
            "object": "list",
            "data": [{"code": job.error_code, "message": job.error_message, "param": None, "line": None}],
        }
    return {
        "id": batch_id(job.id),
        "object": "batch",
        "endpoint": info.get("endpoint"),
        "model": info.get("model"),
        "errors": errors,
        "input_file_id": job.input_file_id,
        "completion_window": info.get("completion_window"),
        "status": BATCH_STATUS[status],
        "output_file_id": job.output_file_id,
        # As OpenAI: no error file when no request failed.
        "error_file_id": job.error_file_id if job.failed else None,
        "created_at": unix_seconds(job.created_at),
        "in_progress_at": unix_seconds(job.started_at),
        "expires_at": unix_seconds(job.expires_at),
        "finalizing_at": unix_seconds(entered.get(JobStatus.FINALIZING)),
        "completed_at": at_end(JobStatus.SUCCEEDED),
        "failed_at": at_end(JobStatus.FAILED),
        "expired_at": at_end(JobStatus.EXPIRED),
        "cancelling_at": unix_seconds(entered.get(JobStatus.CANCELLING)),
        "cancelled_at": at_end(JobStatus.CANCELLED),
        "request_counts": {"total": job.total or 0, "completed": job.completed, "failed": job.failed},
        "metadata": job.metadata_ or {},
    }
