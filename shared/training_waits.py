"""Train then predict: a predict or evaluate job whose model is `train:<job_id>`.

At submit (`api.model_refs`) a training job that has not ended yet makes the new job wait: it is
created `queued` with `Job.waits_for_job_id` set, and the planner and the reconciler leave it alone.
When the training job ends, `shared.jobs.settle_waiting` (called by `shared.jobs.transition` in the
transaction that ends it) either points every waiting job at the trained model version, or fails them
with `training_failed` and the training job's cause. The plan messages of the released jobs go once
that transaction has committed (`plan_after_commit`, a SQLAlchemy `after_commit` hook); a message lost
then is re-sent by the reconciler like any other plan, and the reconciler also settles any waiting job
whose training job has already ended (or is gone).
"""

from __future__ import annotations

import logging

from sqlalchemy import event
from sqlalchemy.orm import Session

from shared import queue
from shared.db import SETTINGS_INFO
from shared.settings import Settings

log = logging.getLogger(__name__)

TRAIN_REF_PREFIX = "train:"
TRAINING_FAILED = "training_failed"
_TO_PLAN = "inferq_plans_to_send"


def training_job_of(ref: str | None) -> str | None:
    """The job id of a `train:<job_id>` model reference; None for any other reference."""
    if ref is None or not ref.startswith(TRAIN_REF_PREFIX):
        return None
    return ref[len(TRAIN_REF_PREFIX) :]


def training_ref(job_id: str) -> str:
    return f"{TRAIN_REF_PREFIX}{job_id}"


def waiting_reason(training_job_id: str) -> str:
    """The sentence a waiting job's object shows as its `status_reason`."""
    return (
        f"waiting for training job {training_job_id} to succeed; "
        "the job then runs on the model version it trains"
    )


def plan_after_commit(session: Session, job_ids: list[str]) -> None:
    """Send the plan messages of `job_ids` once the session's transaction has committed."""
    if not job_ids:
        return
    session.info.setdefault(_TO_PLAN, []).extend(job_ids)
    if not event.contains(session, "after_commit", _send_committed):
        event.listen(session, "after_commit", _send_committed)
        event.listen(session, "after_rollback", _forget_rolled_back)


def _send_committed(session: Session) -> None:
    ids: list[str] = session.info.pop(_TO_PLAN, [])
    settings = session.info.get(SETTINGS_INFO)
    if not ids:
        return
    if not isinstance(settings, Settings):
        log.info("jobs %s released from waiting; the reconciler will plan them", ids)
        return
    for job_id in ids:
        try:
            queue.try_send(queue.TASK_PLAN, [job_id], settings=settings)
        except Exception as e:  # never fail a commit that already happened; the reconciler re-sends
            log.warning("could not send the plan of job %s: %s", job_id, e)


def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_TO_PLAN, None)
