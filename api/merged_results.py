"""`GET /v1/jobs/{id}/results?merged=true`: a job's output with its retry children's lines in place, in
input order (`shared.retry_merge` does the merging; this module finds the objects and streams them).

- Every child that ended is merged (newest first where two filled the same record), and a child's own
  retries are merged into it first, so retrying a retry works too. A child that failed as a whole (it
  has no results) adds nothing; records that failed again in a child stay missing.
- While a child has not ended: 409 `retry_not_finished` (the plain results are there meanwhile).
- A job without children: the plain output file, as without `merged`.

Everything streams: the parent's output, each child's output, error file and position map are read
line by line as the response goes out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from inferq.api.http import CONTENT_TYPES, StoredBytes
from inferq.shared import keys
from inferq.shared.errors import Conflict, InvalidRequest
from inferq.shared.models import File, Job, JobPart
from inferq.shared.retry_merge import (
    Fill,
    PartRange,
    combine,
    error_index,
    fills,
    merge_lines,
    overlay,
    own_entries,
    parse_slot,
    split_lines,
)
from inferq.shared.states import TERMINAL, PartStatus
from inferq.shared.storage import Storage

CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class Child:
    """A retry child that ended, with what its lines are read from."""

    id: str
    output_key: str
    error_key: str
    map_key: str
    total: int
    parts: list[PartRange]
    children: list[Child]  # its own retries, newest first


@dataclass(frozen=True)
class Merged:
    output_key: str
    children: list[Child]  # newest first


def wanted(args: Mapping[str, str]) -> bool:
    """Whether `?merged=true` was asked for; 400 for another value or together with a cursor or limit."""
    raw = args.get("merged")
    if raw is None:
        return False
    if raw.lower() not in ("true", "1", "false", "0"):
        raise InvalidRequest("merged must be true or false", field="merged", code="invalid_value")
    merged = raw.lower() in ("true", "1")
    if merged and ("cursor" in args or "limit" in args):
        raise InvalidRequest(
            "merged results come whole; cursor and limit page a job's own lines",
            field="merged",
            code="invalid_value",
        )
    return merged


def _storage_key(session: Session, tenant: str, file_id: str | None) -> str | None:
    if file_id is None:
        return None
    return session.execute(
        select(File.storage_key).where(File.id == file_id, File.tenant_id == tenant)
    ).scalar_one_or_none()


def children_of(session: Session, job: Job) -> list[Child]:
    """The job's retry children that have results, newest first (and theirs); 409 while one runs."""
    rows = session.execute(
        select(Job)
        .where(Job.parent_job_id == job.id, Job.tenant_id == job.tenant_id)
        .order_by(Job.created_at.desc(), Job.id.desc())
    ).scalars()
    found: list[Child] = []
    for child in list(rows):
        if child.status not in TERMINAL:
            raise Conflict(
                f"job {child.id}, a retry of job {job.id}, is {child.status}; ask again once it has ended "
                "(the plain results are ready now)",
                field="job_id",
                code="retry_not_finished",
            )
        output_key = _storage_key(session, child.tenant_id, child.output_file_id)
        error_key = _storage_key(session, child.tenant_id, child.error_file_id)
        if child.input_file_id is None or output_key is None or error_key is None:
            continue  # it never got its input, failed as a whole, or its results were deleted
        parts = session.execute(
            select(JobPart.first_record, JobPart.records, JobPart.status)
            .where(JobPart.job_id == child.id)
            .order_by(JobPart.index)
        ).all()
        found.append(
            Child(
                id=child.id,
                output_key=output_key,
                error_key=error_key,
                map_key=keys.retry_map_key(child.tenant_id, child.id),
                total=int(child.total or 0),
                parts=[PartRange(p.first_record, p.records, p.status == PartStatus.DONE) for p in parts],
                children=children_of(session, child),
            )
        )
    return found


def load(session: Session, job: Job) -> Merged | None:
    """What the merged view reads; None when it is just the job's own output (no child has results, or
    the job has none yet: the plain route answers that)."""
    output_key = _storage_key(session, job.tenant_id, job.output_file_id)
    if output_key is None or job.status not in TERMINAL:
        return None
    children = children_of(session, job)
    return Merged(output_key, children) if children else None


def _lines(storage: Storage, key: str) -> Iterator[bytes]:
    return (line for line in split_lines(storage.iter_bytes(key)) if line.strip())


def _fills(storage: Storage, child: Child) -> Iterator[Fill]:
    errors = (error_index(line) for line in _lines(storage, child.error_key))
    entries: Iterable[bytes | None] = own_entries(
        _lines(storage, child.output_key), child.parts, errors, child.total
    )
    if child.children:
        entries = overlay(entries, combine([_fills(storage, c) for c in child.children]))
    slots = (parse_slot(line) for line in _lines(storage, child.map_key))
    return fills(entries, slots)


def merged_lines(storage: Storage, merged: Merged) -> Iterator[bytes]:
    return merge_lines(
        _lines(storage, merged.output_key), combine([_fills(storage, c) for c in merged.children])
    )


def _chunks(lines: Iterable[bytes]) -> Iterator[bytes]:
    buffer: list[bytes] = []
    size = 0
    for line in lines:
        buffer.append(line)
        size += len(line)
        if size >= CHUNK_BYTES:
            yield b"".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield b"".join(buffer)


def response(storage: Storage, merged: Merged) -> Response:
    """The merged lines as JSONL; `X-Retry-Jobs` names the children merged (newest first)."""
    body = StoredBytes(_chunks(merged_lines(storage, merged)))
    result = Response(body, status=200, content_type=CONTENT_TYPES["jsonl"])
    result.headers["X-Retry-Jobs"] = ",".join(c.id for c in merged.children)
    return result
