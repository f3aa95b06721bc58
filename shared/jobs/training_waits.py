"""Train then predict: a job whose model is `train:<job_id>` stays queued, unplanned, until that job ends.

What a waiting job and a training reference are: `shared.training_waits`. Here: the state writes, the
wait itself and its settling when the training job ends (`settle_waiting`, called by
`lifecycle.transition` in the transaction that ends it, and by the reconciler).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from inferq.shared import registry, training_waits
from inferq.shared.errors import InferqError, NotFound
from inferq.shared.jobs import lifecycle
from inferq.shared.jobs.cas import applied
from inferq.shared.jobs.events import record_event
from inferq.shared.models import Job, ModelVersion, utcnow
from inferq.shared.states import TERMINAL, JobStatus

log = logging.getLogger(__name__)


def wait_for_training(session: Session, job_id: str, training_job_id: str) -> None:
    """A new job starts waiting for a training job that has not ended yet."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
        .values(waits_for_job_id=training_job_id, updated_at=utcnow())
    )
    record_event(
        session,
        job_id,
        "waiting",
        f"waiting for training job {training_job_id}",
        {"training_job": training_job_id},
    )


def _training_cause(training_job_id: str, training: Any) -> str:
    """Why a training job gave no model, for the jobs that waited for it."""
    if training is None:
        return f"training job {training_job_id} no longer exists"
    status: JobStatus = training.status
    if status is JobStatus.CANCELLED:
        return f"training job {training_job_id} was cancelled"
    cause = f": {training.error_message}" if training.error_message else ""
    return f"training job {training_job_id} {status}{cause}"


def settle_waiting(session: Session, training_job_id: str) -> list[str]:
    """Settle the jobs still waiting for a training job that has ended (or no longer exists).

    Succeeded: each waiting job gets the trained version as its model, stops waiting, and its plan
    message goes once this transaction commits. Any other end: each fails with `training_failed` and the
    training job's cause. Returns the ids of the jobs settled; nothing while the training job still runs.
    """
    waiting = list(
        session.execute(
            select(Job.id).where(Job.waits_for_job_id == training_job_id, Job.status == JobStatus.QUEUED)
        ).scalars()
    )
    if not waiting:
        return []
    training = session.execute(
        select(Job.status, Job.tenant_id, Job.task, Job.result_model, Job.error_message).where(
            Job.id == training_job_id
        )
    ).one_or_none()
    if training is not None and training.status not in TERMINAL:
        return []
    code, cause = training_waits.TRAINING_FAILED, _training_cause(training_job_id, training)
    if training is not None and training.status == JobStatus.SUCCEEDED:
        try:
            model = _trained_version(session, training)
        except InferqError as e:
            code, cause = e.code, f"training job {training_job_id} succeeded, but {e.message}"
        else:
            return _release(session, training_job_id, waiting, model.ref, model.version_id)
    settled = []
    for job_id in waiting:
        left = lifecycle.transition(
            session,
            job_id,
            JobStatus.FAILED,
            sources=frozenset({JobStatus.QUEUED}),
            message=cause,
            data={"code": code, "training_job": training_job_id},
            error_code=code,
            error_message=cause,
        )
        if left is not None:
            settled.append(job_id)
    if settled:
        log.info("jobs %s failed: %s", settled, cause)
    return settled


def _trained_version(session: Session, training: Any) -> registry.ResolvedModel:
    """The version a succeeded training job registered, locked against a concurrent delete (which then
    sees the jobs that run on it)."""
    model = registry.resolve(session, training.tenant_id, training.result_model or "", training.task)
    status = session.execute(
        select(ModelVersion.status).where(ModelVersion.id == model.version_id).with_for_update()
    ).scalar_one_or_none()
    if status != "ready":
        raise NotFound(f"model {model.ref!r} does not exist", code="model_not_found")
    return model


def _release(
    session: Session, training_job_id: str, waiting: list[str], ref: str, version_id: str | None
) -> list[str]:
    """Point the waiting jobs at the trained version; their plan messages go after the commit."""
    now = utcnow()
    released = []
    for job_id in waiting:
        pointed = session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.waits_for_job_id == training_job_id,
                Job.status == JobStatus.QUEUED,
            )
            .values(
                model=ref, model_version_id=version_id, waits_for_job_id=None, sent_at=now, updated_at=now
            )
        )
        if not applied(pointed):
            continue
        record_event(
            session,
            job_id,
            "training_done",
            f"training job {training_job_id} succeeded; running on {ref}",
            {"training_job": training_job_id, "model": ref},
        )
        released.append(job_id)
    training_waits.plan_after_commit(session, released)
    if released:
        log.info("jobs %s released: training job %s made %s", released, training_job_id, ref)
    return released
