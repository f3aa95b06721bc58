"""`GET /v1/jobs/{id}/results?cursor=&limit=`: the output lines finished so far, page by page.

A job's output is the concatenation of its finished parts' output objects in part order (what the
finalizer joins), so a page reads those objects directly: in input order, up to the first part that
has not finished yet. The cursor is opaque to clients; inside it is the part index, the number of
lines already served from that part and the byte offset where they end (so a page never re-reads
what earlier pages served).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from inferq.api.pagination import BIGINT_MAX
from inferq.api.text_ints import int_from_text
from inferq.shared.errors import InvalidRequest
from inferq.shared.models import JobPart
from inferq.shared.states import PartStatus
from inferq.shared.storage import ObjectNotFound, Storage, StorageError

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10000
MAX_PART = 2**31 - 1  # part indexes are a database integer
FORGED = "cursor is not one this server gave"
FINISHED = frozenset({PartStatus.DONE, PartStatus.FAILED})


@dataclass(frozen=True)
class Position:
    part: int  # index of the part to read next
    line: int  # lines of that part already served
    byte: int  # where those lines end in the part's output object

    def encode(self) -> str:
        raw = f"{self.part}.{self.line}.{self.byte}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> Position:
        """The position a cursor from `encode` holds; 400 `invalid_cursor` for anything else."""
        if not cursor:
            return cls(0, 0, 0)
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        except (ValueError, binascii.Error) as e:
            raise _forged() from e
        fields = raw.split(".")
        if len(fields) != 3:
            raise _forged()
        part, line, byte = (
            int_from_text(text, "cursor", 0, high, code="invalid_cursor", message=FORGED)
            for text, high in zip(fields, (MAX_PART, BIGINT_MAX, BIGINT_MAX), strict=True)
        )
        return cls(part, line, byte)


def _forged() -> InvalidRequest:
    return InvalidRequest(FORGED, field="cursor", code="invalid_cursor")


@dataclass(frozen=True)
class Page:
    lines: list[bytes]
    next: Position
    exhausted: bool  # every finished part was read to its end and no part is still to finish


def _past_end(storage: Storage, key: str, start: int) -> bool:
    try:
        return start >= storage.size(key)
    except StorageError:
        return False


def _lines_from(storage: Storage, key: str, start: int) -> Iterator[tuple[bytes, int]]:
    """Each complete line of the object from byte `start`, with the offset just after it."""
    offset = start
    pending = b""
    try:
        for chunk in storage.iter_bytes(key, start=start):
            data = pending + chunk
            begin = 0
            while (cut := data.find(b"\n", begin)) >= 0:
                offset += cut + 1 - begin
                yield data[begin : cut + 1], offset
                begin = cut + 1
            pending = data[begin:]
    except ObjectNotFound:
        return
    except StorageError as e:
        # S3 refuses a range that starts past the end (416). Only a forged cursor points there: a page
        # stops before a line it does not serve, so a cursor's byte is always inside its part's output.
        if start > 0 and _past_end(storage, key, start):
            raise _forged() from e
        raise
    if pending:
        yield pending + b"\n", offset + len(pending)


def read_page(session: Session, storage: Storage, job_id: str, at: Position, limit: int) -> Page:
    """Up to `limit` output lines from `at`, in input order, stopping at the first unfinished part."""
    parts = session.execute(
        select(JobPart.index, JobPart.status, JobPart.output_key)
        .where(JobPart.job_id == job_id, JobPart.index >= at.part)
        .order_by(JobPart.index)
    ).all()
    lines: list[bytes] = []
    position = at
    for index, status, output_key in parts:
        if status not in FINISHED:
            if status == PartStatus.SKIPPED:
                continue
            return Page(lines, position, exhausted=False)
        if index != position.part:
            position = Position(index, 0, 0)
        if output_key is None:
            position = Position(index + 1, 0, 0)
            continue
        reader = _lines_from(storage, output_key, position.byte)
        for line, end in reader:
            if len(lines) == limit:
                return Page(lines, position, exhausted=False)
            lines.append(line)
            position = Position(index, position.line + 1, end)
        position = Position(index + 1, 0, 0)
    return Page(lines, position, exhausted=True)
