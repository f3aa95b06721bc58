"""Retry input: the first step of planning a retry child (`POST /v1/jobs/{id}/retry`).

The API creates the child queued, with its parent and `retry_of` but no input file, so a retry of a huge
job answers at once. Its planner comes here first: it reads the parent's input again where the records to
retry are, writes them as the child's input (JSONL, one record per line, each with an explicit `id`: its
own, or the parent's line number when it had none, as the parent's output and error files named it) and
the position map beside it (`shared.retry_merge`), registers the input as a file of purpose `input`, and
attaches it to the child. Then the child is planned like any predict job.

- `errored`: the records in the parent's error file, read by the lines it names in the parts that
  finished, and every record of a part given up on (its records are all errors).
- `expired` / `cancelled`: every record of the parts that never finished (skipped); all of the input when
  the parent stopped before it was planned.

A record that cannot be parsed at all (not JSON, not an object, a bad id, a broken CSV row) cannot run
again, nor can a record that repeats an earlier record's id (`duplicate_id`, worker.duplicate_ids); it is
counted, and the child's `retry_input` event says how many. Memory stays bounded by a part:
the parent is read one part's byte range at a time and the outputs are spooled to storage.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from inferq.shared import jobs, keys
from inferq.shared.db import session_scope
from inferq.shared.ids import new_id
from inferq.shared.logs import log_ids
from inferq.shared.models import File, Job, JobPart, utcnow
from inferq.shared.records import (
    CSV,
    MAX_FIELDS,
    Record,
    RecordError,
    dumps_line,
    parse_part,
    plan_parts,
    read_header,
)
from inferq.shared.retry_merge import Slot, slot_line, split_lines
from inferq.shared.settings import Settings
from inferq.shared.states import WORKING, PartStatus
from inferq.shared.storage import Storage, get_storage
from inferq.worker.duplicate_ids import mark_duplicates

log = logging.getLogger(__name__)

HEADER_PROBE_BYTES = 1024 * 1024
SPOOL_BYTES = 64 * 1024 * 1024
ERRORED = "errored"


@dataclass(frozen=True)
class ParentPart:
    byte_start: int
    byte_end: int
    first_line: int
    first_record: int
    status: str
    completed: int
    duplicates: frozenset[int] = frozenset()  # records that repeat an earlier id (worker.duplicate_ids)


@dataclass(frozen=True)
class Stretch:
    """A byte range of the parent's input to read again."""

    byte_start: int
    byte_end: int
    first_line: int
    first_record: int
    before: int  # the parent's output lines before its first record
    lines: frozenset[int] | None  # only the records starting on these lines; None: all of them
    duplicates: frozenset[int] = frozenset()  # file indexes of records that repeat an earlier id


@dataclass(frozen=True)
class Source:
    tenant_id: str
    parent_id: str
    only: str
    input_key: str
    input_format: str
    error_key: str | None
    parts: list[ParentPart]
    planned: bool


def errored_stretches(parts: Sequence[ParentPart], error_lines: Iterable[int]) -> Iterator[Stretch]:
    """The stretches of the parent's errored records; `parts` in index order, `error_lines` ascending (the
    error file is the finished parts' error objects joined in part order, each in input order)."""
    lines = iter(error_lines)
    line = next(lines, None)
    before = 0
    for i, part in enumerate(parts):
        end = parts[i + 1].first_line if i + 1 < len(parts) else None
        mine: set[int] = set()
        while line is not None and (end is None or line < end):
            if line >= part.first_line:
                mine.add(line)
            line = next(lines, None)
        if part.status == PartStatus.FAILED:
            yield _stretch(part, before, None)
        elif part.status == PartStatus.DONE:
            if mine:
                yield _stretch(part, before, frozenset(mine))
            before += part.completed


def unfinished_stretches(parts: Sequence[ParentPart]) -> Iterator[Stretch]:
    """The stretches of the parts that never finished (the job was cancelled or expired first)."""
    before = 0
    for part in parts:
        if part.status == PartStatus.DONE:
            before += part.completed
        elif part.status != PartStatus.FAILED:
            yield _stretch(part, before, None)


def _stretch(part: ParentPart, before: int, lines: frozenset[int] | None) -> Stretch:
    return Stretch(
        part.byte_start, part.byte_end, part.first_line, part.first_record, before, lines, part.duplicates
    )


@dataclass
class RetryWriter:
    """The child's input and position map, spooled (memory, then disk) until they go to storage."""

    input: IO[bytes] = field(default_factory=lambda: tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES))
    map: IO[bytes] = field(default_factory=lambda: tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES))
    sha256: Any = field(default_factory=hashlib.sha256)
    bytes: int = 0
    records: int = 0
    unretryable: int = 0
    fields: set[str] = field(default_factory=set)

    def add(self, record: Record, before: int) -> None:
        obj = dict(record.value)
        obj["id"] = record.id  # the id the parent's output and error files gave it
        line = dumps_line(obj)
        self.input.write(line)
        self.sha256.update(line)
        self.bytes += len(line)
        self.records += 1
        self.map.write(slot_line(Slot(record.index, before)))
        if len(self.fields) < MAX_FIELDS:
            self.fields.update(list(obj)[: MAX_FIELDS - len(self.fields)])

    def add_stretch(self, stretch: Stretch, records: list[Record], errors: list[RecordError]) -> None:
        """Records of the stretch to retry go in; the others are the parent's output lines before them."""
        before = stretch.before
        items: list[Record | RecordError] = sorted([*records, *errors], key=lambda item: item.index)
        for item in items:
            if stretch.lines is not None and item.line not in stretch.lines:
                before += 1  # a record of a finished part that is not an error: it has an output line
            elif isinstance(item, RecordError):
                self.unretryable += 1
            else:
                self.add(item, before)

    def close(self) -> None:
        self.input.close()
        self.map.close()


def build_retry_input(job_id: str, settings: Settings) -> File | None:
    """The retry child's input file, built and attached; None when the child must not be planned here (it
    stopped, failed for want of its sources, or another planner attached its input first)."""
    with session_scope(settings) as session:
        child = session.get(Job, job_id)
        if child is None or child.parent_job_id is None or child.status not in WORKING:
            return None
        if child.input_file_id is not None:
            return session.get(File, child.input_file_id)
        delete_after = child.delete_after  # its input goes with it (shared.retention)
        try:
            source = _source(session, child)
        except SourceGone as e:
            jobs.fail_job(session, job_id, e.code, e.message)
            return None

    storage = get_storage(settings)
    header = None
    if source.input_format == CSV:
        header = read_header(b"".join(storage.iter_bytes(source.input_key, 0, HEADER_PROBE_BYTES)))
    writer = RetryWriter()
    try:
        for stretch in _stretches(source, storage, settings):
            records, errors = _read(storage, source, stretch, header)
            writer.add_stretch(stretch, records, errors)
        input_key = keys.retry_input_key(source.tenant_id, job_id)
        map_key = keys.retry_map_key(source.tenant_id, job_id)
        for stream, key in ((writer.input, input_key), (writer.map, map_key)):
            stream.seek(0)
            storage.put_stream(key, stream)
    finally:
        writer.close()

    file = File(
        id=new_id("file"),
        tenant_id=source.tenant_id,
        filename=f"{source.parent_id}-{source.only}.jsonl",
        purpose="input",
        format="jsonl",
        bytes=writer.bytes,
        records=writer.records,
        fields=sorted(writer.fields),
        sha256=writer.sha256.hexdigest(),
        storage_key=input_key,
        job_id=job_id,
        created_at=utcnow(),
        delete_after=delete_after,
    )
    message = f"{writer.records} {source.only} records of job {source.parent_id} run again"
    if writer.unretryable:
        message += f"; {writer.unretryable} cannot be retried: they do not parse or repeat an earlier id"
    with session_scope(settings) as session:
        if not jobs.attach_retry_input(session, job_id, file.id, writer.records, writer.unretryable, message):
            return None
        session.add(file)
    log.info("job %s: %s", job_id, message, extra=log_ids(job_id))
    return file


class SourceGone(Exception):
    """What the child would be built from is gone: it fails with this code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _source(session: Session, child: Job) -> Source:
    """What the child is built from; SourceGone when the parent, its input or its error file is gone."""
    parent = session.get(Job, child.parent_job_id)
    if parent is None:
        raise SourceGone("parent_job_missing", f"job {child.parent_job_id} no longer exists")
    infile = session.get(File, parent.input_file_id) if parent.input_file_id else None
    if infile is None:
        raise SourceGone("input_file_missing", f"the input file of job {parent.id} was deleted")
    error_key = None
    if child.retry_of == ERRORED:
        errors = session.get(File, parent.error_file_id) if parent.error_file_id else None
        if errors is None:
            raise SourceGone("error_file_missing", f"the error file of job {parent.id} was deleted")
        error_key = errors.storage_key
    rows = session.execute(
        select(
            JobPart.byte_start,
            JobPart.byte_end,
            JobPart.first_line,
            JobPart.first_record,
            JobPart.status,
            JobPart.completed,
            JobPart.duplicates,
        )
        .where(JobPart.job_id == parent.id)
        .order_by(JobPart.index)
    ).all()
    parts = [
        ParentPart(
            row.byte_start,
            row.byte_end,
            row.first_line,
            row.first_record,
            row.status,
            row.completed,
            frozenset(row.duplicates or ()),
        )
        for row in rows
    ]
    return Source(
        tenant_id=child.tenant_id,
        parent_id=parent.id,
        only=str(child.retry_of),
        input_key=infile.storage_key,
        input_format=infile.format,
        error_key=error_key,
        parts=parts,
        planned=parent.parts_total is not None,
    )


def _stretches(source: Source, storage: Storage, settings: Settings) -> Iterator[Stretch]:
    if source.error_key is not None:
        lines = (
            int(orjson.loads(line)["line"])
            for line in split_lines(storage.iter_bytes(source.error_key))
            if line.strip()
        )
        yield from errored_stretches(source.parts, lines)
    elif source.planned:
        yield from unfinished_stretches(source.parts)
    else:  # stopped before it was planned: all of its input, cut the way a planner would
        specs, _ = plan_parts(
            storage.iter_bytes(source.input_key), source.input_format, settings.part_records
        )
        for spec in specs:
            yield Stretch(spec.byte_start, spec.byte_end, spec.first_line, spec.first_record, 0, None)


def _read(
    storage: Storage, source: Source, stretch: Stretch, header: list[str] | None
) -> tuple[list[Record], list[RecordError]]:
    """The stretch's records read whole (every field kept), and those that do not parse at all or repeat
    an earlier record's id (the parent never ran them, so neither does the child)."""
    data = b"".join(storage.iter_bytes(source.input_key, stretch.byte_start, stretch.byte_end))
    records, errors = parse_part(
        data,
        source.input_format,
        first_line=stretch.first_line,
        first_record=stretch.first_record,
        fields=(),
        header=header,
    )
    return mark_duplicates(records, errors, stretch.duplicates)
