"""Train then predict: a predict or evaluate job whose model is `train:<job_id>`.

At submit (`api.model_refs`) a training job that has not ended yet makes the new job wait: it is
created `queued` with `Job.waits_for_job_id` set, and the planner and the reconciler leave it alone.
When the training job ends, `shared.jobs.settle_waiting` (called by `shared.jobs.transition` in the
transaction that ends it) either points every waiting job at the trained model version, or fails them
with `training_failed` and the training job's cause. The plan messages of the released jobs go once
that transaction has committed (`plan_after_commit`, through `shared.after_commit`); a message lost
then is re-sent by the reconciler like any other plan, and the reconciler also settles any waiting job
whose training job has already ended (or is gone).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from inferq.shared import queue
from inferq.shared.after_commit import send_after_commit

TRAIN_REF_PREFIX = "train:"
TRAINING_FAILED = "training_failed"


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
    send_after_commit(session, queue.TASK_PLAN, job_ids, "plan of job")
