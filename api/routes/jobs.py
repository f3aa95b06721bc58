"""`/v1/jobs`: submit (validated whole, committed, then sent), read, list, events, cancel, results."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, request
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from inferq.api import dry_run, merged_results, model_refs, partial_results, retry
from inferq.api.auth import require_auth
from inferq.api.cancel import cancel
from inferq.api.context import current_settings, current_storage, db, plausible_id, read_db, tenant_id
from inferq.api.contract.objects import JOB_TYPES
from inferq.api.contract.requests import JOB_BODIES, EvaluateJobCreate, PredictJobCreate, TrainJobCreate
from inferq.api.contract.validate import parse_job_body
from inferq.api.http import CONTENT_TYPES, content_response
from inferq.api.idempotency import header_key
from inferq.api.job_specs import PredictSpec, model_job_spec
from inferq.api.labelled_jobs import submit_train
from inferq.api.model_jobs import input_file_for, submit_model_job
from inferq.api.pagination import int_cursor, list_body, page_request, paginate, parse_limit
from inferq.api.request_json import json_body
from inferq.api.serializers import event_object, job_object
from inferq.api.train_specs import TrainSpec
from inferq.shared import keys, retention, throughput
from inferq.shared.errors import Conflict, InvalidRequest, NotFound
from inferq.shared.job_types import JobType
from inferq.shared.models import File, Job, JobEvent
from inferq.shared.states import TERMINAL, JobStatus

log = logging.getLogger(__name__)

bp = require_auth(Blueprint("jobs", __name__, url_prefix="/v1/jobs"))

FILTER_TYPES = JOB_TYPES  # ?type= filters by the job object's type
LIVE_RATES = frozenset({JobStatus.RUNNING, JobStatus.FINALIZING, JobStatus.CANCELLING})
# Built once: a poll runs it, and building the statement costs more than running its cached form.
_TENANT_JOB = select(Job).where(Job.id == bindparam("job_id"), Job.tenant_id == bindparam("tenant_id"))


def get_job(session: Session, job_id: str) -> Job:
    """The tenant's job, or 404 exactly as if it did not exist."""
    if not plausible_id(job_id, "job"):
        raise NotFound(f"job {job_id!r} does not exist", field="job_id", code="job_not_found")
    job = session.execute(_TENANT_JOB, {"job_id": job_id, "tenant_id": tenant_id()}).scalar_one_or_none()
    if job is None:
        raise NotFound(f"job {job_id!r} does not exist", field="job_id", code="job_not_found")
    return job


@bp.post("")
def submit_job() -> tuple[dict[str, Any], int]:
    dry = _dry_run_flag()
    idem_key = None if dry else header_key()
    body = json_body()
    job_type = body.get("type") if isinstance(body, dict) else None
    if dry and job_type in JOB_BODIES and job_type != JobType.PREDICT:  # before the rest of the body
        raise InvalidRequest(
            f"dry_run applies to predict jobs, not {job_type}", field="dry_run", code="invalid_value"
        )
    job = parse_job_body(body)
    if dry:
        assert isinstance(job, PredictJobCreate)
        return _dry_run(model_job_spec(job)), 200
    if isinstance(job, TrainJobCreate):
        return submit_train(TrainSpec.of(job), body, idem_key), 202
    assert isinstance(job, (PredictJobCreate, EvaluateJobCreate))
    return submit_model_job(model_job_spec(job), body, idem_key), 202


def _dry_run_flag() -> bool:
    raw = request.args.get("dry_run")
    if raw is None:
        return False
    if raw.lower() not in ("true", "1", "false", "0"):
        raise InvalidRequest("dry_run must be true or false", field="dry_run", code="invalid_value")
    return raw.lower() in ("true", "1")


def _dry_run(spec: PredictSpec) -> dict[str, Any]:
    """Validate as a submit does, then parse and tokenize the file; nothing is written or sent."""
    settings = current_settings()
    tenant = tenant_id()
    with db() as session:
        model = model_refs.resolve_now(session, tenant, spec.model, spec.task)
        model_refs.check_params(model, spec.params)
        f = input_file_for(session, spec)
        measured = dry_run.measured_tokens_per_second(session, tenant, model.ref)
        file_key, file_format, size, total = f.storage_key, f.format, f.bytes, f.records or 0
    answer = dry_run.dry_run(
        current_storage(),
        settings,
        model,
        spec.task,
        file_key,
        file_format,
        size,
        total,
        measured,
        max_length=spec.params.get("max_length"),
    )
    log.info(
        "dry run of %s on %s: %d records, %d bad, sampled=%s",
        model.ref,
        spec.input_file,
        answer["records"],
        answer["bad_records"],
        answer["sampled"],
    )
    return answer


@bp.get("")
def list_jobs() -> dict[str, Any]:
    page = page_request()
    stmt = select(Job).where(Job.tenant_id == tenant_id())
    status = request.args.get("status")
    if status is not None:
        wanted = [s for s in status.split(",") if s]
        valid = [s.value for s in JobStatus]
        bad = [s for s in wanted if s not in valid]
        if bad or not wanted:
            raise InvalidRequest(
                f"status must be one or more of {', '.join(valid)} (comma-separated)",
                field="status",
                code="invalid_value",
            )
        stmt = stmt.where(Job.status.in_(wanted))
    job_type = request.args.get("type")
    if job_type is not None:
        if job_type not in FILTER_TYPES:
            raise InvalidRequest(
                f"type must be one of {', '.join(FILTER_TYPES)}", field="type", code="invalid_value"
            )
        stmt = stmt.where(Job.type == job_type)
    with db() as session:
        result = paginate(session, stmt, Job.id, page)
        data = [_with_throughput(session, j) for j in result.items]
        return list_body(data, result.has_more, result.next_cursor)


def _with_throughput(session: Session, job: Job) -> dict[str, Any]:
    """The job object; a job that is working gets its rates over the last minute and its ETA."""
    working = job.status in LIVE_RATES and job.type != JobType.TRAIN
    live = throughput.live_throughput(session, job) if working else None
    return job_object(job, live)


@bp.get("/<job_id>")
def get_job_route(job_id: str) -> dict[str, Any]:
    with read_db() as session:
        return _with_throughput(session, get_job(session, job_id))


@bp.get("/<job_id>/events")
def job_events(job_id: str) -> dict[str, Any]:
    page = page_request()
    with db() as session:
        get_job(session, job_id)
        result = paginate(
            session,
            select(JobEvent).where(JobEvent.job_id == job_id),
            JobEvent.id,
            page,
            newest_first=False,
            cursor_value=int_cursor,
        )
        return list_body([event_object(e) for e in result.items], result.has_more, result.next_cursor)


@bp.post("/<job_id>/retry")
def retry_job(job_id: str) -> tuple[dict[str, Any], int]:
    """A child job over the parent's errored, expired or cancelled records, same ids (api.retry)."""
    with read_db() as session:
        get_job(session, job_id)  # 404 before the body is looked at, as on every route with an id
    return retry.submit_retry(job_id, json_body(), header_key(), get_job), 202


@bp.post("/<job_id>/cancel")
def cancel_job(job_id: str) -> tuple[dict[str, Any], int]:
    return cancel("job", job_id, get_job, lambda _session, job: job_object(job)), 202


@bp.delete("/<job_id>")
def delete_job(job_id: str) -> dict[str, Any]:
    """An ended job and everything it stored (parts, results, manifest, checkpoints, its output and error
    files) are deleted now; 409 while it runs. Its input file and any model it trained stay."""
    with db() as session:
        job = get_job(session, job_id)
        session.refresh(job, with_for_update=True)
        if job.status not in TERMINAL:
            raise Conflict(
                f"job {job_id} is {job.status}; cancel it, and delete it once it has ended",
                field="job_id",
                code="job_not_finished",
            )
        if retention.job_in_use(session, job):
            raise Conflict(
                f"job {job_id} is needed by a job that has not ended (a retry of it, or one waiting for it)",
                field="job_id",
                code="job_in_use",
            )
        objects = retention.purge_job(session, current_storage(), job)
    log.info("job %s deleted on request: %d objects", job_id, objects)
    return {"id": job_id, "object": "job", "deleted": True}


def _job_file_response(job_id: str, attribute: str) -> Response:
    with db() as session:
        job = get_job(session, job_id)
        file_id = getattr(job, attribute)
        if file_id is None:
            raise Conflict(
                f"job {job_id} is {job.status} and has no result files yet",
                field="job_id",
                code="job_not_finished",
            )
        f = session.execute(
            select(File).where(File.id == file_id, File.tenant_id == job.tenant_id)
        ).scalar_one_or_none()
        if f is None:
            raise NotFound(
                f"file {file_id} of job {job_id} was deleted", field="job_id", code="file_not_found"
            )
    return content_response(f)


@bp.get("/<job_id>/results")
def job_results(job_id: str) -> Response:
    if merged_results.wanted(request.args):
        with db() as session:
            merged = merged_results.load(session, get_job(session, job_id))
        if merged is not None:
            return merged_results.response(current_storage(), merged)
    if "cursor" in request.args or "limit" in request.args:
        return _results_page(job_id)
    return _job_file_response(job_id, "output_file_id")


def _results_page(job_id: str) -> Response:
    """The lines finished so far from the cursor on; `X-Next-Cursor` unless the job is over and
    everything was served. The job's state is read before its parts, so a terminal job's parts are final."""
    at = partial_results.Position.decode(request.args.get("cursor", ""))
    limit = parse_limit(request.args.get("limit"), partial_results.DEFAULT_LIMIT, partial_results.MAX_LIMIT)
    with db() as session:
        job = get_job(session, job_id)
        terminal = job.status in TERMINAL
        page = partial_results.read_page(session, current_storage(), job.id, at, limit)
    response = Response(b"".join(page.lines), status=200, content_type=CONTENT_TYPES["jsonl"])
    response.headers["X-Records"] = str(len(page.lines))
    if not (terminal and page.exhausted):
        response.headers["X-Next-Cursor"] = page.next.encode()
    return response


@bp.get("/<job_id>/errors")
def job_errors(job_id: str) -> Response:
    return _job_file_response(job_id, "error_file_id")


@bp.get("/<job_id>/manifest")
def job_manifest(job_id: str) -> Response:
    """The reproducibility record the finalizer wrote beside the results (404 until it has)."""
    with db() as session:
        job = get_job(session, job_id)
        recorded = job.reproducibility is not None
        key = keys.job_manifest_key(job.tenant_id, job.id)
    storage = current_storage()
    if not recorded or not storage.exists(key):
        raise NotFound(
            f"job {job_id} has no manifest yet: it is written when the job is finalized",
            field="job_id",
            code="manifest_not_found",
        )
    return Response(storage.read_bytes(key), status=200, content_type="application/json")
