"""`/v1/batches`: OpenAI's Batch API, served by jobs of type `batch` (same tables, workers and states).

`POST /v1/batches` checks what it can before anything is created: the file (the tenant's, of purpose
batch, JSONL), the endpoint (`/v1/embeddings`), the completion window (`24h`) and the model the requests
ask for, read from the head of the file. The batch runs the first model there that is an embedding
model; lines that ask for another become per-line errors. Responses are OpenAI's shapes.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import Blueprint, request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inferq.api.auth import require_auth
from inferq.api.cancel import cancel
from inferq.api.context import current_settings, current_storage, db, plausible_id, tenant_id
from inferq.api.contract.requests import BatchCreate
from inferq.api.contract.validate import parse_body
from inferq.api.idempotency import Idempotency, create_once, header_key, request_hash
from inferq.api.job_rows import insert_job, lock_model_version
from inferq.api.limits import check_live_jobs
from inferq.api.pagination import MAX_LIMIT, PageRequest, paginate, parse_limit
from inferq.api.request_json import json_body
from inferq.api.serializers import batch_object
from inferq.shared import batch_lines, queue, registry
from inferq.shared.errors import InferqError, InvalidRequest, NotFound, Unprocessable
from inferq.shared.ids import new_id
from inferq.shared.models import File, Job, JobEvent
from inferq.shared.records import JSONL
from inferq.shared.states import JobStatus
from inferq.shared.tasks import EMBEDDING

log = logging.getLogger(__name__)

bp = require_auth(Blueprint("batches", __name__, url_prefix="/v1/batches"))

CREATE_ENDPOINT = "POST /v1/batches"
DEFAULT_LIMIT = 20  # OpenAI's
PROBE_BYTES = 1024 * 1024  # the head of the input read at submit for the models its requests ask for
MARKED_STATES = (JobStatus.FINALIZING, JobStatus.CANCELLING)


def _invalid(message: str, name: str | None, code: str) -> InvalidRequest:
    return InvalidRequest(message, field=name, code=code)


def parse_create(body: Any) -> tuple[str, str, str, dict[str, str]]:
    """(input_file_id, endpoint, completion_window, metadata) of a create body, or a 400."""
    batch = parse_body(BatchCreate, body)
    return batch.input_file_id, batch.endpoint, batch.completion_window, dict(batch.metadata or {})


def _input_file(session: Session, file_id: str, *, lock: bool = False) -> File:
    if not plausible_id(file_id, "file"):
        raise NotFound(f"file {file_id!r} does not exist", field="input_file_id", code="file_not_found")
    stmt = select(File).where(File.id == file_id, File.tenant_id == tenant_id())
    f = session.execute(stmt.with_for_update() if lock else stmt).scalar_one_or_none()
    if f is None:
        raise NotFound(f"file {file_id!r} does not exist", field="input_file_id", code="file_not_found")
    if f.purpose != "batch":
        raise _invalid(
            f"file {f.id} has purpose {f.purpose!r}; batches read files of purpose 'batch'",
            "input_file_id",
            "invalid_file_purpose",
        )
    if f.format != JSONL:
        raise Unprocessable(
            f"file {f.id} is {f.format}; a batch file is JSONL, one request per line",
            field="input_file_id",
            code="invalid_file_format",
        )
    return f


def _probe(file_id: str, endpoint: str) -> batch_lines.Probe:
    with db() as session:
        f = _input_file(session, file_id)
        key, size = f.storage_key, f.bytes
    head = b"".join(current_storage().iter_bytes(key, 0, min(size, PROBE_BYTES)))
    probe = batch_lines.probe(head, complete=size <= PROBE_BYTES, endpoint=endpoint)
    if not probe.models:
        raise Unprocessable(
            f"none of the first {probe.lines} lines of file {file_id} is a usable {endpoint} request; "
            f"the first problem: {probe.first_error}",
            field="input_file_id",
            code="no_valid_requests",
        )
    return probe


def _choose_model(session: Session, probe: batch_lines.Probe) -> tuple[registry.ResolvedModel, list[str]]:
    """The first model the requests ask for that does embeddings, and the names that resolve to it."""
    found: list[tuple[str, registry.ResolvedModel]] = []
    first_error: InferqError | None = None
    for name, line in probe.models:
        try:
            found.append((name, registry.resolve(session, tenant_id(), name, EMBEDDING)))
        except InferqError as e:
            if first_error is None:
                first_error = type(e)(f"line {line}: {e.message}", field="input_file_id", code=e.code)
    if not found:
        assert first_error is not None
        raise first_error
    model = found[0][1]
    lock_model_version(session, model, "input_file_id", found[0][0])
    return model, [name for name, m in found if m.ref == model.ref]


def _entered(session: Session, job_ids: list[str]) -> dict[str, dict[str, datetime]]:
    """When each job first entered the states its row keeps no time for (finalizing, cancelling)."""
    if not job_ids:
        return {}
    rows = session.execute(
        select(JobEvent.job_id, JobEvent.to_status, func.min(JobEvent.created_at))
        .where(JobEvent.job_id.in_(job_ids), JobEvent.kind == "state", JobEvent.to_status.in_(MARKED_STATES))
        .group_by(JobEvent.job_id, JobEvent.to_status)
    ).all()
    entered: dict[str, dict[str, datetime]] = {}
    for job_id, state, at in rows:
        entered.setdefault(job_id, {})[str(state)] = at
    return entered


def _object(session: Session, job: Job) -> dict[str, Any]:
    return batch_object(job, _entered(session, [job.id]).get(job.id, {}))


def get_batch(session: Session, batch_id: str) -> Job:
    """The tenant's batch, or 404 exactly as if it did not exist."""
    job = None
    if plausible_id(batch_id, "batch"):
        job = session.execute(
            select(Job).where(
                Job.id == batch_lines.job_id_of(batch_id),
                Job.tenant_id == tenant_id(),
                Job.type == batch_lines.JOB_TYPE,
            )
        ).scalar_one_or_none()
    if job is None:
        raise NotFound(f"batch {batch_id!r} does not exist", field="batch_id", code="batch_not_found")
    return job


@bp.post("")
def create_batch() -> tuple[dict[str, Any], int]:
    idem_key = header_key()
    body = json_body()
    file_id, endpoint, window, metadata = parse_create(body)
    settings = current_settings()
    tenant = tenant_id()
    probe = _probe(file_id, endpoint)

    def create(session: Session) -> dict[str, Any]:
        check_live_jobs(session, tenant, settings)
        model, aliases = _choose_model(session, probe)
        f = _input_file(session, file_id, lock=True)
        info = {
            "endpoint": endpoint,
            "completion_window": window,
            "model": aliases[0],
            "aliases": aliases,
            "dimensions": model.config.get("dimensions"),
        }
        job = insert_job(
            session,
            Job(
                id=new_id("job"),
                tenant_id=tenant,
                type=batch_lines.JOB_TYPE,
                task=EMBEDDING,
                model=model.ref,
                model_version_id=model.version_id,
                input_file_id=f.id,
                total=f.records,
                params={"openai_batch": info},
                metadata_=metadata,
            ),
            batch_lines.COMPLETION_WINDOWS[window],
        )
        return _object(session, job)

    def replay(session: Session, existing_id: str) -> dict[str, Any] | None:
        job = session.execute(
            select(Job).where(Job.id == batch_lines.job_id_of(existing_id), Job.tenant_id == tenant)
        ).scalar_one_or_none()
        return None if job is None else _object(session, job)

    idem = Idempotency(tenant, CREATE_ENDPOINT, idem_key, request_hash(body))
    resource, replayed = create_once(idem, create, replay)
    job_id = batch_lines.job_id_of(resource["id"])
    if not replayed:
        queue.try_send(queue.TASK_PLAN, [job_id], settings=settings)
        log.info("batch %s queued as job %s: %s on %s", resource["id"], job_id, resource["model"], file_id)
    return resource, 200


@bp.get("")
def list_batches() -> dict[str, Any]:
    """Newest first; `?after=<batch id>` (OpenAI's cursor; `?cursor=` too) continues after that batch."""
    limit = parse_limit(request.args.get("limit"), DEFAULT_LIMIT, MAX_LIMIT)
    after = request.args.get("after") or request.args.get("cursor") or None
    if after is not None and not plausible_id(after, "batch"):
        raise _invalid("after must be the id of a batch from a previous page", "after", "invalid_cursor")
    page = PageRequest(limit=limit, cursor=batch_lines.job_id_of(after) if after else None)
    stmt = select(Job).where(Job.tenant_id == tenant_id(), Job.type == batch_lines.JOB_TYPE)
    with db() as session:
        result = paginate(session, stmt, Job.id, page)
        entered = _entered(session, [j.id for j in result.items])
        data = [batch_object(j, entered.get(j.id, {})) for j in result.items]
    last_id = data[-1]["id"] if data else None
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": last_id,
        "has_more": result.has_more,
        "next_cursor": last_id if result.has_more else None,
    }


@bp.get("/<batch_id>")
def get_batch_route(batch_id: str) -> dict[str, Any]:
    with db() as session:
        return _object(session, get_batch(session, batch_id))


@bp.post("/<batch_id>/cancel")
def cancel_batch(batch_id: str) -> dict[str, Any]:
    return cancel("batch", batch_id, get_batch, _object)
