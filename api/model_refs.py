"""The `model` of a predict or evaluate job at submit: a registry reference, or `train:<job_id>`.

`train:<job_id>` names the model a train job of the same tenant makes: a job that already succeeded
resolves to its `result_model` at once; one that has not ended yet makes the new job wait for it
(`shared.training_waits`); one that ended any other way refuses the submit (409 `training_failed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from inferq.api.context import plausible_id
from inferq.api.job_rows import lock_model_version
from inferq.shared import jobs, registry, training_waits
from inferq.shared.errors import Conflict, InvalidRequest, NotFound
from inferq.shared.job_types import JobType
from inferq.shared.model_limits import check_max_length
from inferq.shared.models import Job
from inferq.shared.states import JobStatus

# A training job in these states will never make a model (cancelling ends cancelled or expired).
NO_MODEL = frozenset({JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED, JobStatus.CANCELLING})


@dataclass(frozen=True)
class ModelChoice:
    """What a job's `model` resolved to: a version now, or a training job to wait for."""

    model: registry.ResolvedModel | None = None
    waits_for: str | None = None

    @property
    def ref(self) -> str:
        """What the job row stores: name:version, or `train:<job_id>` while it waits."""
        if self.model is not None:
            return self.model.ref
        return training_waits.training_ref(self.waits_for or "")

    @property
    def version_id(self) -> str | None:
        return None if self.model is None else self.model.version_id


def _training_job(session: Session, tenant_id: str, job_id: str, task: str, field_name: str) -> Job:
    """The tenant's train job for `task`, locked so that it cannot end unseen while the new job is written:
    a training job ending concurrently either sees the new waiting job or is seen ended here."""
    job = None
    if plausible_id(job_id, "job"):
        job = session.execute(
            select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id).with_for_update()
        ).scalar_one_or_none()
    if job is None:
        raise NotFound(f"job {job_id!r} does not exist", field=field_name, code="job_not_found")
    if job.type is not JobType.TRAIN:
        raise InvalidRequest(
            f"job {job_id} is a {job.type} job; train:<job_id> names the model a train job makes",
            field=field_name,
            code="not_a_train_job",
        )
    if job.task != task:
        raise InvalidRequest(
            f"training job {job_id} trains a {job.task} model, not {task}",
            field=field_name,
            code="model_task_mismatch",
        )
    return job


def _refused(job: Job, field_name: str) -> Conflict:
    status = job.status
    if status is JobStatus.CANCELLING:
        why = "is being cancelled"
    elif status is JobStatus.CANCELLED:
        why = "was cancelled"
    else:
        why = str(status) + (f": {job.error_message}" if job.error_message else "")
    return Conflict(
        f"training job {job.id} {why}; it will not make a model",
        field=field_name,
        code=training_waits.TRAINING_FAILED,
    )


def resolve(
    session: Session, tenant_id: str, ref: str, task: str, field_name: str = "model", *, can_wait: bool = True
) -> ModelChoice:
    """The model a new job runs, checked and locked; `can_wait=False` (a dry run) refuses a training job
    that has not succeeded yet with 409 `training_not_finished`."""
    training_id = training_waits.training_job_of(ref)
    if training_id is None:
        model = registry.resolve(session, tenant_id, ref, task, field_name=field_name)
        lock_model_version(session, model, field_name, ref)
        return ModelChoice(model=model)
    job = _training_job(session, tenant_id, training_id, task, field_name)
    status = job.status
    if status is JobStatus.SUCCEEDED and job.result_model:
        model = registry.resolve(session, tenant_id, job.result_model, task, field_name=field_name)
        lock_model_version(session, model, field_name, ref)
        return ModelChoice(model=model)
    if status in NO_MODEL or status is JobStatus.SUCCEEDED:
        raise _refused(job, field_name)
    if not can_wait:
        instead = (
            f"dry-run with its base model {job.model} for an estimate, or once it has succeeded"
            if job.model
            else "dry-run once it has succeeded (it trains from scratch: no base model to estimate with)"
        )
        raise Conflict(
            f"training job {job.id} is {status} and a dry run needs the trained model: {instead}",
            field=field_name,
            code="training_not_finished",
        )
    return ModelChoice(waits_for=job.id)


def resolve_now(session: Session, tenant_id: str, ref: str, task: str) -> registry.ResolvedModel:
    """The version a dry run measures with: a `train:` reference only once its training succeeded."""
    model = resolve(session, tenant_id, ref, task, can_wait=False).model
    assert model is not None  # can_wait=False never answers a wait
    return model


def check_params(model: registry.ResolvedModel | None, params: dict[str, Any]) -> None:
    """What a predict or evaluate job's params ask of its model (None while it is being trained): a
    `max_length` the model can take."""
    check_max_length(params.get("max_length"), model, "params.max_length")


def start_waiting(session: Session, job: Job, choice: ModelChoice) -> Job:
    """After the job row is written: a job whose model is still training waits for it."""
    if choice.waits_for is not None:
        jobs.wait_for_training(session, job.id, choice.waits_for)
        session.flush()
        session.refresh(job)
    return job
