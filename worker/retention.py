"""The retention sweep: delete, from storage and then from SQL, what is past its `delete_after`.

Runs on Celery beat (`inferq.retention_sweep`, every `RETENTION_SWEEP_SECONDS`, next to the reconciler).
Each run, oldest first and at most `limit` rows of each kind:

1. ended jobs past `delete_after`: every object under the job's prefix (parts, results, manifest,
   checkpoints), its output and error files, then its rows; `GET /v1/jobs/{id}` then answers 404. A job
   still running waits until it has ended; a job that a live retry or waiting job needs waits for it.
   Models trained by a job stay (they are deleted explicitly, `DELETE /v1/models/{name}:{version}`).
2. files past `delete_after`: the object, then the row; a file a live job reads waits for it. Jobs that
   read it note it in their events (`file_deleted`).
3. result cache rows older than `INFERQ_RETENTION_DAYS` (none when it is 0: kept).

Every item is its own transaction, so one failure (storage down) leaves the rest done and is retried
by the next run. One log line per deletion, with ids only: never names or contents.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError

from inferq.shared import retention
from inferq.shared.db import session_scope
from inferq.shared.logs import log_ids
from inferq.shared.models import File, Job, ResultCache, utcnow
from inferq.shared.settings import Settings
from inferq.shared.states import TERMINAL
from inferq.shared.storage import Storage, StorageError, get_storage

log = logging.getLogger(__name__)

SWEEP_LIMIT = 1000


@dataclass
class SweepReport:
    jobs: int = 0
    files: int = 0
    objects: int = 0
    cache_rows: int = 0
    kept_in_use: int = 0  # past their time but still needed by a live job: the next run tries again
    failed: int = 0  # storage or database errors: the next run tries again

    def total(self) -> int:
        return self.jobs + self.files + self.cache_rows


def sweep(settings: Settings, *, now: datetime | None = None, limit: int = SWEEP_LIMIT) -> SweepReport:
    """One pass over jobs, files and cached results past their retention (as of `now`)."""
    now = now or utcnow()
    storage = get_storage(settings)
    report = SweepReport()
    with session_scope(settings) as session:
        job_ids = list(
            session.execute(
                select(Job.id)
                .where(
                    Job.delete_after.is_not(None), Job.delete_after <= now, Job.status.in_(sorted(TERMINAL))
                )
                .order_by(Job.delete_after)
                .limit(limit)
            ).scalars()
        )
    for job_id in job_ids:
        _sweep_job(settings, storage, job_id, now, report)
    with session_scope(settings) as session:
        file_ids = list(
            session.execute(
                select(File.id)
                .where(File.delete_after.is_not(None), File.delete_after <= now)
                .order_by(File.delete_after)
                .limit(limit)
            ).scalars()
        )
    for file_id in file_ids:
        _sweep_file(settings, storage, file_id, now, report)
    if settings.retention_days > 0:
        _sweep_cache(settings, now - timedelta(days=settings.retention_days), report)
    if report.total() or report.failed:
        log.info(
            "retention sweep: deleted %d jobs, %d files, %d objects, %d cached results; "
            "%d kept while in use, %d failed (retried next run)",
            report.jobs,
            report.files,
            report.objects,
            report.cache_rows,
            report.kept_in_use,
            report.failed,
        )
    return report


def _sweep_job(settings: Settings, storage: Storage, job_id: str, now: datetime, report: SweepReport) -> None:
    try:
        with session_scope(settings) as session:
            job = session.execute(
                select(Job).where(Job.id == job_id).with_for_update(skip_locked=True)
            ).scalar_one_or_none()
            if job is None or job.delete_after is None or job.delete_after > now:
                return
            if job.status not in TERMINAL:
                return
            if retention.job_in_use(session, job):
                report.kept_in_use += 1
                return
            tenant_id = job.tenant_id
            objects = retention.purge_job(session, storage, job)
    except (StorageError, SQLAlchemyError) as e:
        report.failed += 1
        log.warning("retention: job %s not deleted yet: %s", job_id, type(e).__name__, extra=log_ids(job_id))
        return
    report.jobs += 1
    report.objects += objects
    log.info(
        "retention: deleted job %s of tenant %s and %d objects",
        job_id,
        tenant_id,
        objects,
        extra=log_ids(job_id, tenant_id=tenant_id),
    )


def _sweep_file(
    settings: Settings, storage: Storage, file_id: str, now: datetime, report: SweepReport
) -> None:
    try:
        with session_scope(settings) as session:
            f = session.execute(
                select(File).where(File.id == file_id).with_for_update(skip_locked=True)
            ).scalar_one_or_none()
            if f is None or f.delete_after is None or f.delete_after > now:
                return
            tenant_id = f.tenant_id
            if retention.files_in_use(session, tenant_id, [file_id]):
                report.kept_in_use += 1
                return
            retention.purge_file(session, storage, f, "retention")
    except (StorageError, SQLAlchemyError) as e:
        report.failed += 1
        log.warning("retention: file %s not deleted yet: %s", file_id, type(e).__name__)
        return
    report.files += 1
    report.objects += 1
    log.info(
        "retention: deleted file %s of tenant %s", file_id, tenant_id, extra=log_ids(tenant_id=tenant_id)
    )


def _sweep_cache(settings: Settings, before: datetime, report: SweepReport) -> None:
    try:
        with session_scope(settings) as session:
            result = session.execute(delete(ResultCache).where(ResultCache.created_at < before))
            report.cache_rows += int(result.rowcount or 0)  # type: ignore[attr-defined]
    except SQLAlchemyError as e:
        report.failed += 1
        log.warning("retention: cached results not deleted yet: %s", type(e).__name__)
        return
    if report.cache_rows:
        log.info("retention: deleted %d cached results older than %s", report.cache_rows, before.date())
