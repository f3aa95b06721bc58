"""Writing a new job row: shared by every endpoint that creates a job (predict, train, evaluate, batch)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from inferq.api.context import current_settings
from inferq.api.idempotency import Idempotency, create_once, request_hash
from inferq.api.serializers import job_object
from inferq.shared import jobs, registry, retention
from inferq.shared.errors import NotFound
from inferq.shared.models import Job, ModelVersion, utcnow

SUBMIT_ENDPOINT = "POST /v1/jobs"


def lock_model_version(
    session: Session, model: registry.ResolvedModel, field_name: str, ref: str | None = None
) -> None:
    """Wait for (and see) a concurrent delete of this version rather than race it."""
    if model.version_id is None:
        return
    status = session.execute(
        select(ModelVersion.status).where(ModelVersion.id == model.version_id).with_for_update()
    ).scalar_one_or_none()
    if status != "ready":
        raise NotFound(f"model {ref or model.ref!r} does not exist", field=field_name, code="model_not_found")


def insert_job(
    session: Session,
    job: Job,
    window_seconds: int,
    *,
    mark_sent: bool = True,
    retention_days: int | None = None,
) -> Job:
    """The job row as `queued` (with its event), its completion window, when its data is deleted
    (`retention_days`, None: the server's default; shared.retention), and, unless the caller sends
    its own first message, the time its plan message is due (the reconciler re-sends a lost one)."""
    job.delete_after = retention.delete_after(utcnow(), retention_days, current_settings())
    jobs.create(session, job)
    job.expires_at = job.created_at + timedelta(seconds=window_seconds)
    if mark_sent:
        jobs.mark_sent(session, job.id)
    session.flush()
    session.refresh(job)
    return job


def create_job_once(
    tenant: str,
    idem_key: str | None,
    body: dict[str, Any],
    create: Callable[[Session], dict[str, Any]],
    *,
    endpoint: str = SUBMIT_ENDPOINT,
) -> tuple[dict[str, Any], bool]:
    """Run `create` once per Idempotency-Key (keys are per `endpoint`); a replay answers the first job's
    current object."""

    def replay(session: Session, existing_id: str) -> dict[str, Any] | None:
        job = session.execute(
            select(Job).where(Job.id == existing_id, Job.tenant_id == tenant)
        ).scalar_one_or_none()
        return None if job is None else job_object(job)

    return create_once(Idempotency(tenant, endpoint, idem_key, request_hash(body)), create, replay)
