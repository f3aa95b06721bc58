"""Plan: split a job's input file into parts by byte range and send one message per part."""

from __future__ import annotations

import logging

from sqlalchemy import select

from inferq.shared import jobs, queue, worker_presence
from inferq.shared.db import session_scope
from inferq.shared.logs import log_ids
from inferq.shared.models import File, Job, JobPart
from inferq.shared.records import plan_parts
from inferq.shared.settings import Settings
from inferq.shared.states import WORKING, JobStatus, PartStatus
from inferq.shared.storage import StorageError, get_storage
from inferq.worker.duplicate_ids import UNCHECKED_JOB_TYPES, find_duplicates
from inferq.worker.retry_input import build_retry_input

log = logging.getLogger(__name__)


PARTS_PER_WORKER = 2
PARTS_WITHOUT_PRESENCE = 8
MIN_PART_RECORDS = 100


def inference_workers(settings: Settings) -> int | None:
    """Live workers that take inference parts (presence records), or None when that cannot be told."""
    try:
        workers = worker_presence.live_workers(settings)
    except Exception as e:  # presence is advisory: plan without it
        log.warning("cannot count live workers: %s", e)
        return None
    return sum(1 for w in workers if "inference" in w.queues.split(",")) or None


def part_size(total_hint: int | None, settings: Settings, workers: int | None = None) -> int:
    """Records per part: the configured size, smaller for small files so every worker gets work.

    With `workers` live inference workers, aim for PARTS_PER_WORKER parts each (every worker busy, little
    tail when parts run at different speeds, and few parts: each costs a claim, two objects and a
    commit, and longer parts sort into batches with less padding); without a count, 8 parts. Never
    below MIN_PART_RECORDS records a part, never above INFERQ_PART_RECORDS.
    """
    if not total_hint:
        return settings.part_records
    parts = PARTS_PER_WORKER * workers if workers else PARTS_WITHOUT_PRESENCE
    return max(
        min(settings.part_records, -(-total_hint // parts)), min(MIN_PART_RECORDS, settings.part_records)
    )


def plan_job(job_id: str, settings: Settings) -> None:
    with session_scope(settings) as session:
        job = session.get(Job, job_id)
        if job is None or job.status not in WORKING:
            return
        if job.waits_for_job_id is not None:  # model `train:<job_id>`: planned once that job succeeds
            log.info("job %s waits for training job %s", job_id, job.waits_for_job_id, extra=log_ids(job_id))
            return
        if job.parts_total is not None:
            # A duplicate plan message: the parts exist; make sure none waits for a lost message.
            queued = (
                session.execute(
                    select(JobPart.id).where(JobPart.job_id == job_id, JobPart.status == PartStatus.QUEUED)
                )
                .scalars()
                .all()
            )
            resend = list(queued)
        else:
            resend = None
            job_type = job.type
            file = session.get(File, job.input_file_id) if job.input_file_id else None
            retry_child = job.parent_job_id is not None and job.input_file_id is None
    if resend is not None:
        for part_id in resend:
            queue.try_send(queue.TASK_RUN_PART, [part_id], settings=settings)
        return
    if retry_child:  # a retry child's input is built from its parent first (worker.retry_input)
        file = build_retry_input(job_id, settings)
        if file is None:
            return
    if file is None:
        with session_scope(settings) as session:
            jobs.fail_job(
                session, job_id, "input_file_missing", "the input file was deleted before the job ran"
            )
        return

    storage = get_storage(settings)
    try:
        specs, total = plan_parts(
            storage.iter_bytes(file.storage_key),
            file.format,
            part_size(file.records, settings, inference_workers(settings)),
        )
        if job_type not in UNCHECKED_JOB_TYPES:
            specs = find_duplicates(storage, file.storage_key, file.format, specs)
    except StorageError as e:
        log.warning(
            "job %s: cannot read input yet (%s); the reconciler will retry", job_id, e, extra=log_ids(job_id)
        )
        raise

    with session_scope(settings) as session:
        if not jobs.set_plan(session, job_id, specs, total):
            return
        finalize = False
        if not specs and jobs.transition(
            session,
            job_id,
            JobStatus.FINALIZING,
            sources=frozenset({JobStatus.RUNNING}),
            message="no records",
        ):
            jobs.mark_sent(session, job_id)
            finalize = True
        part_ids = (
            session.execute(select(JobPart.id).where(JobPart.job_id == job_id).order_by(JobPart.index))
            .scalars()
            .all()
        )
    log.info("job %s planned: %d parts, %d records", job_id, len(part_ids), total, extra=log_ids(job_id))
    if finalize:
        queue.try_send(queue.TASK_FINALIZE, [job_id], settings=settings)
    for part_id in part_ids:
        queue.try_send(queue.TASK_RUN_PART, [part_id], settings=settings)
