"""Run part: lease the part, read its byte range, predict in batches, write its objects, commit."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from inferq.shared import keys, queue, registry
from inferq.shared.db import session_scope
from inferq.shared.job_types import JobType
from inferq.shared.jobs import Lease
from inferq.shared.logs import log_ids
from inferq.shared.models import File, Job, JobPart
from inferq.shared.records import Record, RecordError, error_line, read_header
from inferq.shared.settings import Settings
from inferq.shared.storage import Storage, StorageUnavailable, get_storage
from inferq.worker import lease as leasing
from inferq.worker import metrics as worker_metrics
from inferq.worker import result_cache, result_cache_store
from inferq.worker.duplicate_ids import mark_duplicates
from inferq.worker.formatters import Formatter, formatter_for
from inferq.worker.lease import LeaseLost, Outcome, Progress
from inferq.worker.model_cache import ModelCache

log = logging.getLogger(__name__)

_cache: ModelCache | None = None
HEADER_PROBE_BYTES = 1024 * 1024
PART_FAILED = "part_failed"  # the error code of a given-up part's records when they cannot be re-read


def model_cache(settings: Settings) -> ModelCache:
    global _cache
    if _cache is None:
        _cache = ModelCache(settings.model_cache_size)
    return _cache


@dataclass(frozen=True)
class JobFacts:
    """What a part needs of its job."""

    id: str
    type: JobType
    task: str
    params: dict[str, Any]


@dataclass(frozen=True)
class PartContext:
    lease: Lease
    tenant_id: str
    job: JobFacts
    part_index: int
    byte_start: int
    byte_end: int
    first_line: int
    first_record: int
    records: int
    duplicates: tuple[int, ...]  # file indexes of records that repeat an earlier id (worker.duplicate_ids)
    attempts: int
    file_key: str
    file_format: str
    model: registry.ResolvedModel
    formatter: Formatter  # what this job kind reads and writes


def _load_context(session: Session, lease: Lease, settings: Settings) -> PartContext:
    session.expire_all()  # read the part as the claim left it
    part = session.get(JobPart, lease.part_id)
    job = session.get(Job, lease.job_id)
    assert part is not None and job is not None
    file = session.get(File, job.input_file_id) if job.input_file_id else None
    if file is None:
        raise FileNotFoundError(f"input file {job.input_file_id} of job {job.id} is gone")
    model = registry.for_job(session, job.model, job.model_version_id)
    return PartContext(
        lease=lease,
        tenant_id=job.tenant_id,
        job=JobFacts(id=job.id, type=job.type, task=job.task, params=dict(job.params or {})),
        part_index=part.index,
        byte_start=part.byte_start,
        byte_end=part.byte_end,
        first_line=part.first_line,
        first_record=part.first_record,
        records=part.records,
        duplicates=tuple(part.duplicates or ()),
        attempts=part.attempts,
        file_key=file.storage_key,
        file_format=file.format,
        model=model,
        formatter=formatter_for(job, model, settings),
    )


def _read_records(
    ctx: PartContext, storage: Storage, timings: dict[str, float] | None = None
) -> tuple[list[Record], list[RecordError]]:
    """The part's records and per-record errors; `timings` gets read_seconds and parse_seconds."""
    started = time.perf_counter()
    header = None
    if ctx.file_format == "csv":
        header = read_header(b"".join(storage.iter_bytes(ctx.file_key, 0, HEADER_PROBE_BYTES)))
    data = b"".join(storage.iter_bytes(ctx.file_key, ctx.byte_start, ctx.byte_end))
    read_done = time.perf_counter()
    records, errors = ctx.formatter.parse(
        data, ctx.file_format, first_line=ctx.first_line, first_record=ctx.first_record, header=header
    )
    parsed = mark_duplicates(records, errors, ctx.duplicates)
    if timings is not None:
        timings["read_seconds"] = round(read_done - started, 4)
        timings["parse_seconds"] = round(time.perf_counter() - read_done, 4)
    return parsed


def _write_objects(
    storage: Storage,
    out_key: str,
    err_key: str,
    lines: list[bytes],
    errors: list[RecordError],
    format_error: Callable[[RecordError], bytes] = error_line,
) -> None:
    with tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024) as out:
        for line in lines:
            out.write(line)
        out.seek(0)
        storage.put_stream(out_key, out)  # type: ignore[arg-type]
    storage.put_bytes(err_key, b"".join(format_error(e) for e in sorted(errors, key=lambda e: e.index)))


def run_part(part_id: str, settings: Settings, *, fair: bool = False, redelivered: bool = False) -> Outcome:
    """What happened: done, failed, skipped (not claimable), lost (lease lost), released.

    `fair` (a run_part message, worker.tasks): the message is permission to run one part and `part_id`
    only names one; `jobs.claim_fair_part` picks which (fair share across tenants, priority within one).
    `redelivered`: the broker's copy of a message delivered before.
    """
    # Claim and read in one transaction: if the database fails in between, the claim never happened
    # (rather than an attempt counted and a lease held by a worker that is not running the part).
    with session_scope(settings) as session:
        lease = leasing.claim(session, part_id, settings, fair=fair, redelivered=redelivered)
        ctx = _load_context(session, lease, settings) if lease is not None else None
    if lease is None or ctx is None:
        return Outcome.SKIPPED
    part_id = lease.part_id  # fair share may run another part than the message named
    storage = get_storage(settings)
    out_key = keys.part_output_key(ctx.tenant_id, ctx.job.id, ctx.part_index)
    err_key = keys.part_error_key(ctx.tenant_id, ctx.job.id, ctx.part_index)

    if leasing.lost_too_often(ctx.attempts, settings):
        return _give_up(
            ctx,
            storage,
            settings,
            out_key,
            err_key,
            "worker_lost",
            f"the worker running this record was lost {ctx.attempts - 1} times (out of memory?)",
        )

    with leasing.held(lease, settings) as (progress, heartbeat):
        try:
            written = _run(ctx, storage, settings, progress, out_key, err_key)
        except LeaseLost as e:
            log.info("part %s stopped: %s", part_id, e, extra=log_ids(lease.job_id, part_id))
            return leasing.stopped(
                lease, progress, settings, "job stopped while the part ran; its partial work is dropped"
            )
        except SystemExit:
            # The pool child was told to stop (billiard turns SIGTERM, SIGHUP, SIGQUIT into SystemExit):
            # hand the part back now rather than leave it `running` until the lease lapses.
            heartbeat.stop()
            leasing.hand_back(lease, settings, "worker shutting down", resend=queue.TASK_RUN_PART)
            raise
        except (StorageUnavailable, OperationalError) as e:
            # Storage or the database is down: not the part's fault, so the attempt does not count; the
            # task retries with backoff (worker.tasks) and claims the part again.
            heartbeat.stop()
            leasing.hand_back(lease, settings, f"{type(e).__name__}: {e}", resend=None)
            raise
        except Exception as e:
            heartbeat.stop()
            return _on_error(ctx, storage, settings, out_key, err_key, e)

    stats = written.stats
    if written.new_results:  # after the part's objects are written; never fails the part
        stats["cache_stored"] = result_cache_store.store(settings, ctx.tenant_id, written.new_results)
    fan_in = leasing.complete(lease, settings, written.completed, written.failed, out_key, err_key, stats)
    if fan_in is None:
        log.info(
            "part %s finished but its lease was taken over; discarded",
            part_id,
            extra=log_ids(lease.job_id, part_id),
        )
        return Outcome.LOST
    log.info(
        "job %s part %d done: %d ok, %d errors in %.2fs on %s",
        ctx.job.id,
        ctx.part_index,
        written.completed,
        written.failed,
        stats["total_seconds"],
        leasing.worker_name(),
        extra=log_ids(lease.job_id, part_id),
    )
    worker_metrics.part_finished(
        ctx.job.task, "done", written.completed, written.failed, float(stats["total_seconds"])
    )
    leasing.finalize_if_last(lease, fan_in, settings)
    return Outcome.DONE


@dataclass(frozen=True)
class PartWritten:
    """An attempt's work, its objects written: what `run_part` commits."""

    completed: int  # records with an output line
    failed: int  # records with an error line
    stats: dict[str, Any]  # the part_done event's data: timings, batches, device …
    new_results: dict[str, str]  # the result cache's new rows (params.cache)


def _run(
    ctx: PartContext, storage: Storage, settings: Settings, progress: Progress, out_key: str, err_key: str
) -> PartWritten:
    """Read the part's records, predict, write its output and error objects."""
    # Where a part's time goes, in its part_done event: read_seconds, parse_seconds, then the
    # predictor's preprocess_seconds (tokenize) and forward_seconds, encode_seconds (output lines),
    # write_seconds (objects).
    started = time.perf_counter()
    timings: dict[str, float] = {}
    records, errors = _read_records(ctx, storage, timings)
    with progress.lock:
        progress.failed = len(errors)
    new_results: dict[str, str] = {}
    if result_cache.wanted(ctx.job.type, ctx.job.params):
        outputs, stats, tokens, new_results = result_cache_store.predict_cached(
            settings,
            ctx.tenant_id,
            result_cache_store.key_space(ctx.model, ctx.job.task, ctx.job.params),
            records,
            lambda todo, done: _predict(ctx, todo, progress, settings, storage, done),
        )
    else:
        outputs, stats, tokens = _predict(ctx, records, progress, settings, storage)
    records, outputs, tokens, late = ctx.formatter.failed_late(records, outputs, tokens)
    if late:
        errors = sorted(errors + late, key=lambda e: e.index)
    encode_started = time.perf_counter()
    lines = ctx.formatter.output_lines(records, outputs, tokens)
    del outputs
    write_started = time.perf_counter()
    _write_objects(storage, out_key, err_key, lines, errors, ctx.formatter.error_line)
    stats.update(
        timings,
        encode_seconds=round(write_started - encode_started, 4),
        write_seconds=round(time.perf_counter() - write_started, 4),
        total_seconds=round(time.perf_counter() - started, 4),
        worker=leasing.worker_name(),
        attempt=ctx.lease.attempt,
    )
    return PartWritten(len(records), len(errors), stats, new_results)


def _predict(
    ctx: PartContext,
    records: list[Record],
    progress: Progress,
    settings: Settings,
    storage: Storage,
    done_before: int = 0,
) -> tuple[list[dict[str, Any]], dict[str, Any], list[int]]:
    """The predictor's outputs for the part's values, its stats, and the tokens each value took.
    `done_before`: the part's records already served without the model (the result cache)."""
    from inferq.worker.inference import Stopped, batching_for, resolve_device, run_predictions

    if done_before:
        with progress.lock:
            progress.completed = done_before
    if not records:
        return [], {"batches": 0}, []
    device = resolve_device()
    load_started = time.perf_counter()
    predictor = model_cache(settings).get(
        ctx.model, ctx.job.task, storage, settings.model_cache_dir, str(device)
    )
    load_seconds = time.perf_counter() - load_started
    params = ctx.job.params
    batch_tokens, max_batch_size = batching_for(
        device, int(params.get("batch_tokens") or settings.batch_tokens), settings.max_batch_size
    )
    inputs = ctx.formatter.inputs(records)
    values_done = 0

    def on_batch(n: int) -> bool:
        nonlocal values_done
        values_done += n
        with progress.lock:
            progress.completed = done_before + inputs.records_done(values_done)
        return progress.stop is None

    try:
        result = run_predictions(
            predictor,
            inputs.values,
            params,
            batch_tokens=batch_tokens,
            max_batch_size=max_batch_size,
            on_batch=on_batch,
        )
    except Stopped as e:
        raise LeaseLost(progress.stop or "stopped") from e
    stats = dict(result.stats)
    stats["model_load_seconds"] = round(load_seconds, 4)
    stats["device"] = str(device)
    return result.outputs, stats, result.tokens


def _on_error(
    ctx: PartContext, storage: Storage, settings: Settings, out_key: str, err_key: str, error: Exception
) -> Outcome:
    """An attempt raised: retry it, or give up after max attempts (counted in SQL, not in the broker)."""
    message = f"{type(error).__name__}: {error}"
    if leasing.out_of_attempts(ctx.attempts, settings):
        log.exception(
            "job %s part %d failed for good",
            ctx.job.id,
            ctx.part_index,
            exc_info=error,
            extra=log_ids(ctx.lease.job_id, ctx.lease.part_id),
        )
        return _give_up(ctx, storage, settings, out_key, err_key, "processing_error", message)
    log.warning(
        "job %s part %d attempt %d failed, retrying: %s",
        ctx.job.id,
        ctx.part_index,
        ctx.attempts,
        message,
        extra=log_ids(ctx.lease.job_id, ctx.lease.part_id),
    )
    return leasing.release_for_retry(ctx.lease, settings, ctx.attempts, message, queue.TASK_RUN_PART)


def _give_up(
    ctx: PartContext,
    storage: Storage,
    settings: Settings,
    out_key: str,
    err_key: str,
    code: str,
    message: str,
) -> Outcome:
    """The part failed too often: every record becomes an error line, and the job goes on.

    Its records are read again for their ids and lines; if they cannot be (what failed the part may be
    what fails the read), each record of the part's range still gets a `part_failed` line."""
    try:
        records, errors = _read_records(ctx, storage)
        all_errors = errors + [RecordError(r.index, r.line, r.id, code, message) for r in records]
    except Exception as e:
        log.error(
            "job %s part %d unreadable: %s",
            ctx.job.id,
            ctx.part_index,
            e,
            extra=log_ids(ctx.lease.job_id, ctx.lease.part_id),
        )
        all_errors = _range_errors(ctx, message, f"{type(e).__name__}: {e}")
    if not all_errors and ctx.records:  # never no line for a part that had records
        all_errors = _range_errors(ctx, message, "no record read")
    _write_objects(storage, out_key, err_key, [], all_errors, ctx.formatter.error_line)
    outcome = leasing.give_up(ctx.lease, settings, code, message, err_key, out_key)
    if outcome is not Outcome.FAILED:
        return outcome
    log.error(
        "job %s part %d failed: %s",
        ctx.job.id,
        ctx.part_index,
        message,
        extra=log_ids(ctx.lease.job_id, ctx.lease.part_id),
    )
    worker_metrics.part_finished(ctx.job.task, "failed", 0, len(all_errors), None)
    return outcome


def _range_errors(ctx: PartContext, message: str, reread: str) -> list[RecordError]:
    """One `part_failed` error per record of the part's range, by index, when its records cannot be
    read again: the line is the part's first line plus the record's offset (exact for one record a
    line; the message names the part's first line either way)."""
    detail = (
        f"{message}; the part (records {ctx.first_record + 1}-{ctx.first_record + ctx.records}, from line "
        f"{ctx.first_line}) could not be read again ({reread})"
    )
    return [
        RecordError(ctx.first_record + i, ctx.first_line + i, None, PART_FAILED, detail)
        for i in range(ctx.records)
    ]


def part_ids_of(settings: Settings, job_id: str) -> list[str]:
    with session_scope(settings) as session:
        return list(
            session.execute(
                select(JobPart.id).where(JobPart.job_id == job_id).order_by(JobPart.index)
            ).scalars()
        )
