"""Finalize: join the parts' objects into the output and error files, register them, end the job."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, select

from inferq.shared import jobs, keys, queue
from inferq.shared.db import session_scope
from inferq.shared.ids import new_id
from inferq.shared.job_types import JobType
from inferq.shared.logs import log_ids
from inferq.shared.models import File, Job, JobPart, utcnow
from inferq.shared.settings import Settings
from inferq.shared.states import JobStatus, PartStatus
from inferq.shared.storage import Storage, get_storage
from inferq.shared.training_waits import training_job_of
from inferq.worker import manifest, result_cache
from inferq.worker.explain_events import explanation_event

log = logging.getLogger(__name__)

WAIT_FOR_RUNNING_PARTS_SECONDS = 2
PREDICTION_TYPES = frozenset({JobType.PREDICT, JobType.BATCH})


def batching_metrics(part_stats: list[dict[str, Any] | None]) -> dict[str, Any]:
    """A prediction job's metrics from its parts' stats: tokens, padded token slots, the padding ratio
    (padding / slots over all batches of all parts), batches, and the precisions the parts ran in."""
    tokens = padded = batches = 0
    precisions: set[str] = set()
    for stats in part_stats:
        if not stats or "padded_tokens" not in stats:
            continue
        tokens += int(stats.get("tokens") or 0)
        padded += int(stats["padded_tokens"])
        batches += int(stats.get("batches") or 0)
        if stats.get("precision"):
            precisions.add(str(stats["precision"]))
    if not padded:
        return {}
    return {
        "tokens": tokens,
        "padded_tokens": padded,
        "padding_ratio": round((padded - tokens) / padded, 4),
        "batches": batches,
        "precision": ",".join(sorted(precisions)),
    }


def _sha256(storage: Storage, key: str) -> str:
    h = hashlib.sha256()
    for chunk in storage.iter_bytes(key):
        h.update(chunk)
    return h.hexdigest()


def _result_file(
    storage: Storage, tenant_id: str, job_id: str, purpose: str, key: str, size: int, records: int
) -> File:
    return File(
        id=new_id("file"),
        tenant_id=tenant_id,
        filename=f"{job_id}-{purpose}.jsonl",
        purpose=purpose,
        format="jsonl",
        bytes=size,
        records=records,
        fields=[],
        sha256=_sha256(storage, key),
        storage_key=key,
        job_id=job_id,
        created_at=utcnow(),
    )


def finalize_job(job_id: str, settings: Settings) -> str:
    """Returns the job's end state, or `waiting` when running parts must stop first."""
    with session_scope(settings) as session:
        job = session.get(Job, job_id)
        if job is None:
            return "missing"
        status = job.status
        if status is JobStatus.CANCELLING:
            if jobs.running_parts(session, job_id) > 0:
                waiting = True
            else:
                waiting = False
                jobs.skip_unstarted_parts(session, job_id)
        elif status is JobStatus.FINALIZING:
            waiting = False
        else:
            return status
        tenant_id = job.tenant_id
        job_type, model_ref, model_version_id = job.type, job.model, job.model_version_id
        task, params, input_file_id = job.task, dict(job.params or {}), job.input_file_id
        input_sha256 = (
            session.execute(select(File.sha256).where(File.id == input_file_id)).scalar_one_or_none()
            if input_file_id
            else None
        )
        expired = job.error_code == "expired"
        delete_after = job.delete_after  # the output and error files go with the job (shared.retention)
        parts = session.execute(
            select(JobPart.output_key, JobPart.error_key, JobPart.completed, JobPart.failed, JobPart.stats)
            .where(JobPart.job_id == job_id, JobPart.status.in_([PartStatus.DONE, PartStatus.FAILED]))
            .order_by(JobPart.index)
        ).all()
    if waiting:
        queue.try_send(
            queue.TASK_FINALIZE, [job_id], countdown=WAIT_FOR_RUNNING_PARTS_SECONDS, settings=settings
        )
        return "waiting"

    storage = get_storage(settings)
    out_key = keys.job_output_key(tenant_id, job_id)
    err_key = keys.job_error_key(tenant_id, job_id)
    out_bytes = storage.concat([p.output_key for p in parts if p.output_key], out_key)
    err_bytes = storage.concat([p.error_key for p in parts if p.error_key], err_key)
    completed = sum(p.completed for p in parts)
    failed = sum(p.failed for p in parts)
    output = _result_file(storage, tenant_id, job_id, "output", out_key, out_bytes, completed)
    errors = _result_file(storage, tenant_id, job_id, "errors", err_key, err_bytes, failed)
    output.delete_after = errors.delete_after = delete_after
    extra: dict[str, object] = {}
    cache_totals = result_cache.cache_metrics([p.stats for p in parts])  # params.cache: hits, misses
    if status is JobStatus.FINALIZING and job_type is JobType.EVALUATE:
        extra["metrics"] = _evaluation(settings, storage, out_key, model_ref, model_version_id)
    elif job_type in PREDICTION_TYPES:
        batching = batching_metrics([p.stats for p in parts])
        if batching or cache_totals:
            extra["metrics"] = {**batching, **cache_totals}
    manifest_key = keys.job_manifest_key(tenant_id, job_id)
    record: dict[str, Any] | None = None
    # A job stopped while it waited for its training job (model `train:<job_id>`) never had a model.
    if job_type in manifest.RECORDED_TYPES and training_job_of(model_ref) is None:
        files = manifest.ResultHashes(
            input_file_id=input_file_id,
            input_sha256=input_sha256,
            output_file_id=output.id,
            output_sha256=output.sha256,
            error_file_id=errors.id,
            error_sha256=errors.sha256,
        )
        record = _reproducibility(
            settings, storage, job_id, job_type, task, model_ref, model_version_id, params, parts, files
        )
        extra["reproducibility"] = record
    if status is JobStatus.FINALIZING:
        target = JobStatus.SUCCEEDED
    else:
        target = JobStatus.EXPIRED if expired else JobStatus.CANCELLED
    with session_scope(settings) as session:
        session.add_all([output, errors])
        session.flush()
        if settings.s3_sse is not None:  # every object above was written with server-side encryption
            sse = {"server_side_encryption": settings.s3_sse}
            message = f"results stored encrypted ({settings.s3_sse})"
            jobs.record_event(session, job_id, "encryption", message, sse)
        explained = explanation_event([p.stats for p in parts])
        if explained is not None:  # rolled back with the rest if another finalizer won the job
            jobs.record_event(session, job_id, *explained)
        if cache_totals:  # likewise rolled back if another finalizer won the job
            jobs.record_event(
                session, job_id, "result_cache", result_cache.cache_message(cache_totals), cache_totals
            )
        left = jobs.transition(
            session,
            job_id,
            target,
            sources=frozenset({status}),
            message=f"{completed} records done, {failed} failed",
            data={"completed": completed, "failed": failed},
            output_file_id=output.id,
            error_file_id=errors.id,
            # The counters end as the files' line counts, whatever progress the workers published.
            completed=completed,
            failed=failed,
            **extra,
        )
        if left is None:
            session.rollback()
            return "lost"
        if record is not None:
            # Written once this finalizer has won the job's row and before it commits: a duplicate that
            # lost never overwrites it, and a crash before the commit leaves the job to a rerun.
            storage.put_bytes(manifest_key, manifest.manifest_bytes(record))
            jobs.record_event(
                session,
                job_id,
                "manifest",
                "reproducibility record written",
                {"key": manifest_key, "output_sha256": output.sha256, "error_sha256": errors.sha256},
            )
    log.info("job %s %s: %d records, %d errors", job_id, target, completed, failed, extra=log_ids(job_id))
    return target


def _reproducibility(
    settings: Settings,
    storage: Storage,
    job_id: str,
    job_type: JobType,
    task: str,
    model_ref: str,
    model_version_id: str | None,
    params: dict[str, Any],
    parts: Sequence[Row[Any]],
    files: manifest.ResultHashes,
) -> dict[str, Any]:
    """The job's reproducibility record (worker.manifest), for the exact model version it ran."""
    from inferq.shared.registry import for_job

    with session_scope(settings) as session:
        model = for_job(session, model_ref, model_version_id)
    return manifest.build_record(
        job_id=job_id,
        job_type=job_type,
        task=task,
        model=model,
        tokenizer_hash=manifest.model_tokenizer_sha256(storage, model),
        params=params,
        settings=settings,
        part_stats=[p.stats for p in parts],
        files=files,
    )


def _evaluation(
    settings: Settings, storage: Storage, out_key: str, model_ref: str, model_version_id: str | None
) -> dict[str, object]:
    """An evaluate job's metrics, from its joined output (prediction and expected label per record)."""
    from inferq.shared.registry import for_job
    from inferq.worker.evaluation import evaluation_metrics

    with session_scope(settings) as session:
        labels = for_job(session, model_ref, model_version_id).labels
    return evaluation_metrics(storage, out_key, labels)
