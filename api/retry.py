"""`POST /v1/jobs/{id}/retry`: a child job over the records of a predict job that errored, or that never
ran because the job expired or was cancelled, with the same ids.

The request only checks and writes the child row (queued, `parent_job_id`, `retry_of`, no input file yet)
and the `retried` / `retry_of` events, so it answers at once however big the parent is; the child's
planner builds its input from the parent (`worker.retry_input`) before planning it as usual.
`GET /v1/jobs/{id}/results?merged=true` serves the parent's output with the child's lines in place
(`api.merged_results`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inferq.api.context import current_settings, tenant_id
from inferq.api.contract.requests import RETRY_ONLY, RetryCreate, window_seconds
from inferq.api.contract.validate import parse_body
from inferq.api.job_rows import create_job_once, insert_job
from inferq.api.limits import check_live_jobs
from inferq.api.serializers import job_object
from inferq.shared import jobs, queue
from inferq.shared.errors import Conflict
from inferq.shared.ids import new_id
from inferq.shared.job_types import JobType
from inferq.shared.models import File, Job, JobPart, ModelVersion
from inferq.shared.states import TERMINAL, PartStatus

log = logging.getLogger(__name__)

RETRY_ENDPOINT = "POST /v1/jobs/{id}/retry"
ERRORED = "errored"
ONLY = RETRY_ONLY  # errored, expired, cancelled
RETRYABLE_TYPES = (JobType.PREDICT,)
FINISHED_PARTS = (PartStatus.DONE, PartStatus.FAILED)


def parse_retry(body: Any) -> tuple[str, int | None]:
    """`only` and the optional `completion_window` (seconds; None: the parent's window)."""
    retry = parse_body(RetryCreate, body, 'the body must be a JSON object such as {"only": "errored"}')
    window = retry.completion_window
    return retry.only, None if window is None else window_seconds(window)


def unfinished_records(session: Session, parent: Job) -> int:
    """Records of the parent that never ran: those of its parts that did not finish, or all of them when
    it stopped before it was planned."""
    if parent.parts_total is None:
        return int(parent.total or 0)
    return int(
        session.execute(
            select(func.coalesce(func.sum(JobPart.records), 0)).where(
                JobPart.job_id == parent.id, JobPart.status.not_in(FINISHED_PARTS)
            )
        ).scalar_one()
    )


def check_retryable(session: Session, parent: Job, only: str) -> int:
    """409 unless the parent can be retried this way; how many records the child will cover at most
    (records that do not parse at all are counted here but cannot run again)."""
    if parent.type not in RETRYABLE_TYPES:
        raise Conflict(
            f"job {parent.id} is a {parent.type} job; only predict jobs can be retried",
            field="job_id",
            code="job_not_retryable",
        )
    status = parent.status
    if status not in TERMINAL:
        raise Conflict(
            f"job {parent.id} is {status}; retry it once it has ended",
            field="job_id",
            code="job_not_finished",
        )
    if only != ERRORED and status != only:
        raise Conflict(
            f"job {parent.id} is {status}, not {only}: only={only} retries the records a {only} "
            "job never ran",
            field="only",
            code=f"job_not_{only}",
        )
    if parent.input_file_id is None and parent.parent_job_id is not None:
        raise Conflict(
            f"job {parent.id} stopped before its input was built from job {parent.parent_job_id}; "
            f"retry job {parent.parent_job_id} instead",
            field="job_id",
            code="nothing_to_retry",
        )
    if session.get(File, parent.input_file_id or "") is None:
        raise Conflict(
            f"the input file of job {parent.id} was deleted; its records cannot run again",
            field="job_id",
            code="input_file_missing",
        )
    if only == ERRORED:
        count = int(parent.failed or 0)
        if count and session.get(File, parent.error_file_id or "") is None:
            raise Conflict(
                f"the error file of job {parent.id} was deleted; it named the records to retry",
                field="job_id",
                code="error_file_missing",
            )
    else:
        count = unfinished_records(session, parent)
    if count == 0:
        what = "no record failed" if only == ERRORED else "every record ran before it stopped"
        raise Conflict(f"job {parent.id} has nothing to retry: {what}", field="only", code="nothing_to_retry")
    if parent.model_version_id is not None:
        ready = session.execute(
            select(ModelVersion.status).where(ModelVersion.id == parent.model_version_id).with_for_update()
        ).scalar_one_or_none()
        if ready != "ready":
            raise Conflict(
                f"the model {parent.model} of job {parent.id} was deleted",
                field="job_id",
                code="model_not_found",
            )
    return count


def _window(parent: Job, requested: int | None, default: int) -> int:
    """The child's completion window: the one asked for, else the parent's, else the server's."""
    if requested is not None:
        return requested
    if parent.expires_at is not None and parent.created_at is not None:
        return max(60, int((parent.expires_at - parent.created_at) / timedelta(seconds=1)))
    return default


def submit_retry(
    job_id: str, body: Any, idem_key: str | None, load_parent: Callable[[Session, str], Job]
) -> dict[str, Any]:
    """Create the child (once per Idempotency-Key) and send its plan message; its job object."""
    only, window = parse_retry(body)
    settings = current_settings()
    tenant = tenant_id()

    def create(session: Session) -> dict[str, Any]:
        parent = load_parent(session, job_id)
        session.refresh(parent, with_for_update=True)  # a concurrent DELETE of the parent sees the child
        count = check_retryable(session, parent, only)
        check_live_jobs(session, tenant, settings)
        child = insert_job(
            session,
            Job(
                id=new_id("job"),
                tenant_id=tenant,
                type=parent.type,
                task=parent.task,
                model=parent.model,
                model_version_id=parent.model_version_id,
                input_file_id=None,  # built by the child's planner (worker.retry_input)
                params=dict(parent.params or {}),
                priority=parent.priority,
                metadata_=dict(parent.metadata_ or {}),
                webhook_url=parent.webhook_url,
                parent_job_id=parent.id,
                retry_of=only,
            ),
            _window(parent, window, settings.default_completion_window_seconds),
        )
        jobs.record_retry(session, parent.id, child.id, only, count)
        return job_object(child)

    resource, replayed = create_job_once(
        tenant, idem_key, {"job": job_id, **body}, create, endpoint=RETRY_ENDPOINT
    )
    if not replayed:
        queue.try_send(queue.TASK_PLAN, [resource["id"]], settings=settings)
        log.info("job %s queued: retry of the %s records of job %s", resource["id"], only, job_id)
    return resource
