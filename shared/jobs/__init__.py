"""The only package that changes job and part state.

Every change is a compare-and-set UPDATE (it only applies if the row is still in the state the caller
saw) and every job state change writes a `job_events` row in the same transaction. Callers own the
transaction (`shared.db.session_scope`) and send broker messages only after it commits.

Its modules, one concern each:
- `events`: the `job_events` rows.
- `lifecycle`: create, `transition` (compare-and-set), cancel, fail, delete an ended job.
- `plans`: the parts a job's input is cut into (`PartSpec`, `new_part`, `set_plan`).
- `parts`: a part's lease (claim, heartbeat, complete, fail, release, skip) and the fan-in to its job.
- `fair_share`: which part a run_part message runs (`next_parts`, `claim_fair_part`).
- `training`: the one leased part of a training job, its metrics and the model it registers.
- `training_waits`: jobs waiting for a training job (`train:<job_id>`), settled when it ends.
- `retry_children`: the events and input of a retry child.
"""

from __future__ import annotations

from inferq.shared.jobs.events import record_event
from inferq.shared.jobs.fair_share import (
    FAIR_CANDIDATES,
    FAIR_CLAIM_ROUNDS,
    Candidate,
    claim_fair_part,
    next_parts,
)
from inferq.shared.jobs.lifecycle import (
    create,
    delete_job,
    fail_job,
    is_cancelled,
    mark_sent,
    request_cancel,
    transition,
)
from inferq.shared.jobs.parts import (
    FanIn,
    Lease,
    claim_part,
    complete_part,
    fail_part,
    heartbeat,
    release_part,
    running_parts,
    skip_unstarted_parts,
)
from inferq.shared.jobs.plans import PartSpec, new_part, set_plan
from inferq.shared.jobs.retry_children import attach_retry_input, record_retry
from inferq.shared.jobs.training import finish_training, plan_single_part, set_metrics, start_training
from inferq.shared.jobs.training_waits import settle_waiting, wait_for_training

__all__ = [
    "FAIR_CANDIDATES",
    "FAIR_CLAIM_ROUNDS",
    "Candidate",
    "FanIn",
    "Lease",
    "PartSpec",
    "attach_retry_input",
    "claim_fair_part",
    "claim_part",
    "complete_part",
    "create",
    "delete_job",
    "fail_job",
    "fail_part",
    "finish_training",
    "heartbeat",
    "is_cancelled",
    "mark_sent",
    "new_part",
    "next_parts",
    "plan_single_part",
    "record_event",
    "record_retry",
    "release_part",
    "request_cancel",
    "running_parts",
    "set_metrics",
    "set_plan",
    "settle_waiting",
    "skip_unstarted_parts",
    "start_training",
    "transition",
    "wait_for_training",
]
