"""Cancel, for `/v1/jobs/<id>/cancel` and `/v1/batches/<id>/cancel` alike: the job goes to `cancelling`
in the request's transaction; after the commit the finalizer is sent for, and it makes the job `cancelled`.

A job that is already cancelling answers as it stands (cancel is idempotent); one that has ended is a 409.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from inferq.api.context import current_settings, db
from inferq.shared import jobs, queue
from inferq.shared.errors import Conflict
from inferq.shared.models import Job
from inferq.shared.states import TERMINAL

log = logging.getLogger(__name__)

Find = Callable[[Session, str], Job]
Show = Callable[[Session, Job], dict[str, Any]]


def cancel(noun: str, public_id: str, find: Find, show: Show) -> dict[str, Any]:
    """Cancel the tenant's `noun` (`job` or `batch`) that `find` looks up by `public_id` (404 as it says);
    returns the resource as `show` draws it once the cancel is recorded."""
    with db() as session:
        job = find(session, public_id)
        left = jobs.request_cancel(session, job.id)
        if left is None:
            _refuse_if_ended(session, job, noun, public_id)
        session.flush()
        session.refresh(job)
        resource = show(session, job)
    if left is not None:
        queue.try_send(queue.TASK_FINALIZE, [job.id], settings=current_settings())
        log.info("%s %s cancel requested (was %s)", noun, public_id, left)
    return resource


def _refuse_if_ended(session: Session, job: Job, noun: str, public_id: str) -> None:
    status = session.execute(select(Job.status).where(Job.id == job.id)).scalar_one()
    if status in TERMINAL:
        raise Conflict(
            f"{noun} {public_id} is {status}; a finished {noun} cannot be cancelled",
            field=f"{noun}_id",
            code=f"{noun}_not_cancellable",
        )
