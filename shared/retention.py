"""Retention and deletion: when a file or a job goes, and deleting one *for real* (objects, then rows).

Every file and job row carries `delete_after` (set when it is made: `INFERQ_RETENTION_DAYS` after, or the
`retention_days` the request gave; null = kept until deleted). `worker.retention` sweeps rows past it;
`DELETE /v1/files/{id}` and `DELETE /v1/jobs/{id}` call the same functions at once.

Objects go before rows, inside the transaction that deletes the rows: a crash in between leaves a row
whose objects are (partly) gone, which the next sweep or DELETE finishes; never an object nobody knows.
Only ids are logged, never names or contents.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.orm import Session

from inferq.shared import jobs, keys
from inferq.shared.errors import Conflict
from inferq.shared.job_types import JobType
from inferq.shared.models import File, IdempotencyKey, Job, JobPart
from inferq.shared.settings import Settings
from inferq.shared.states import LIVE
from inferq.shared.storage import Storage, delete_prefix

log = logging.getLogger(__name__)


def delete_after(created_at: datetime, days: int | None, settings: Settings) -> datetime | None:
    """When something made at `created_at` is deleted: `days` after (the server's default when None);
    None (kept until deleted) for 0 days."""
    days = settings.retention_days if days is None else days
    return None if days <= 0 else created_at + timedelta(days=days)


def files_in_use(session: Session, tenant_id: str, file_ids: Collection[str]) -> set[str]:
    """Which of these files a job that has not ended reads: its input, a train job's validation file, or
    the parent's input and error files of a retry whose input is not built yet."""
    if not file_ids:
        return set()
    wanted = set(file_ids)
    used = set(
        session.execute(
            select(Job.input_file_id).where(
                Job.tenant_id == tenant_id, Job.status.in_(sorted(LIVE)), Job.input_file_id.in_(wanted)
            )
        ).scalars()
    )
    # A live retry child whose input is not built yet reads its parent's input and error files.
    waiting_children = select(Job.parent_job_id).where(
        Job.tenant_id == tenant_id,
        Job.status.in_(sorted(LIVE)),
        Job.parent_job_id.is_not(None),
        Job.input_file_id.is_(None),
    )
    for parent_input, parent_errors in session.execute(
        select(Job.input_file_id, Job.error_file_id).where(Job.id.in_(waiting_children))
    ):
        used.update(f for f in (parent_input, parent_errors) if f in wanted)
    for params in session.execute(
        select(Job.params).where(
            Job.tenant_id == tenant_id, Job.type == JobType.TRAIN, Job.status.in_(sorted(LIVE))
        )
    ).scalars():
        validation = (params or {}).get("validation_file")
        if validation in wanted:
            used.add(validation)
    return {f for f in used if f is not None}


def produced_files(session: Session, job: Job) -> list[File]:
    """The files a job made: its output and error files, a retry's input."""
    made = [i for i in (job.output_file_id, job.error_file_id) if i]
    return list(
        session.execute(
            select(File).where(File.tenant_id == job.tenant_id, or_(File.job_id == job.id, File.id.in_(made)))
        ).scalars()
    )


def job_in_use(session: Session, job: Job) -> bool:
    """Whether a job that has not ended still needs this one: a retry of it, a job waiting for it, or
    one that reads a file it made."""
    needed = session.execute(
        select(
            exists().where(
                Job.status.in_(sorted(LIVE)),
                or_(Job.parent_job_id == job.id, Job.waits_for_job_id == job.id),
            )
        )
    ).scalar_one()
    made = [f.id for f in produced_files(session, job)]
    return bool(needed) or bool(files_in_use(session, job.tenant_id, made))


def _forget_idempotency(session: Session, tenant_id: str, resource_id: str) -> None:
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.resource_id == resource_id
        )
    )


def purge_file(session: Session, storage: Storage, f: File, reason: str) -> None:
    """Delete the file's bytes, then its row (committed by the caller), and note it in the events of the
    jobs that read it (`reason`: `retention` or `deleted`). The caller checked that it is not in use."""
    storage.delete(f.storage_key)
    readers = session.execute(
        select(Job.id).where(Job.tenant_id == f.tenant_id, Job.input_file_id == f.id)
    ).scalars()
    why = "its retention period passed" if reason == "retention" else "deleted on request"
    for job_id in readers:
        jobs.record_event(
            session,
            job_id,
            "file_deleted",
            f"input file {f.id} deleted: {why}",
            {"file": f.id, "reason": reason},
        )
    _forget_idempotency(session, f.tenant_id, f.id)
    session.delete(f)
    session.flush()


def purge_job(session: Session, storage: Storage, job: Job) -> int:
    """Delete everything of an ended job: every object under its prefix (parts, results, manifest,
    checkpoints), the files it made (output, errors, a retry's input), then its rows
    (`shared.jobs.delete_job`). Models it trained stay (they are deleted explicitly). Returns the number
    of objects deleted. The caller locked the job row, saw it ended and checked `job_in_use`."""
    prefix = keys.job_prefix(job.tenant_id, job.id)
    stray: set[str] = set()
    for out_key, err_key in session.execute(
        select(JobPart.output_key, JobPart.error_key).where(JobPart.job_id == job.id)
    ).tuples():
        stray.update(k for k in (out_key, err_key) if k and not k.startswith(prefix))
    results = produced_files(session, job)
    stray.update(f.storage_key for f in results if not f.storage_key.startswith(prefix))
    deleted = delete_prefix(storage, prefix)
    for key in sorted(stray):
        storage.delete(key)
    deleted += len(stray)
    for f in results:
        _forget_idempotency(session, f.tenant_id, f.id)
        session.delete(f)
    session.flush()
    _forget_idempotency(session, job.tenant_id, job.id)
    job_id = job.id
    session.expunge(job)
    if not jobs.delete_job(session, job_id):  # the caller checked under a lock; a safety net
        raise Conflict(f"job {job_id} has not ended", field="job_id", code="job_not_finished")
    return deleted
