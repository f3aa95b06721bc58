"""Rows to the JSON objects API.md fixes: files, jobs, job events, models. Timestamps are UTC with `Z`."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from shared.models import File, Job, JobEvent, ModelVersion
from shared.registry import ResolvedModel


def timestamp(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with millisecond precision and a `Z`: `2026-01-02T03:04:05.678Z`."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
    }


def job_object(job: Job) -> dict[str, Any]:
    error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
    return {
        "id": job.id,
        "object": "job",
        "type": job.type,
        "task": job.task,
        "status": job.status,
        "model": job.model,
        "input_file": job.input_file_id,
        "params": job.params or {},
        "priority": job.priority,
        "created_at": timestamp(job.created_at),
        "started_at": timestamp(job.started_at),
        "finished_at": timestamp(job.finished_at),
        "expires_at": timestamp(job.expires_at),
        "progress": {"total": job.total, "completed": job.completed, "failed": job.failed},
        "output_file": job.output_file_id,
        "error_file": job.error_file_id,
        "result_model": job.result_model,
        "metrics": job.metrics,
        "error": error,
        "metadata": job.metadata_ or {},
        "webhook_url": job.webhook_url,
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
