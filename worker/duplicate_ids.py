"""Duplicate ids in a job's input: the first record with an id runs, each later one is a `duplicate_id` error.

A record's id is the one its output or error line shows: its own `id` (a string, or an integer written
as its decimal digits, so `1` and `"1"` are the same id) or, when it has none or it cannot be read, its
physical line number. So `{"id": 7}` on line 3 repeats a record without an id on line 7, and a line
that does not parse takes its line number as well: every line of the output and error files answers to
one id, and results join back to their inputs.

Parts are planned by byte range, so a repeat can be in another part than its first: the planner reads
the file once more, one part at a time, with the parser the runner uses (`shared.records.parse_part`), and
keeps a 16-byte blake2b digest of every record's id in file order (16 MB a million records, and some
30 MB more while they are sorted; two different ids share a digest with odds below 1e-24 in a file of
ten million). Each part row gets the file indexes of its repeats (`job_parts.duplicates`); the runner
turns those records into error lines, and a retry child never runs them again. Batch jobs answer by
`custom_id` and are not checked here: each of their lines has its own output `id`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Iterable
from dataclasses import replace

import numpy as np

from inferq.shared.job_types import JobType
from inferq.shared.jobs import PartSpec
from inferq.shared.records import CSV, Record, RecordError, parse_part, read_header
from inferq.shared.storage import Storage

log = logging.getLogger(__name__)

DUPLICATE_ID = "duplicate_id"
DIGEST_BYTES = 16
HEADER_PROBE_BYTES = 1024 * 1024
UNCHECKED_JOB_TYPES = frozenset({JobType.BATCH})  # answered by custom_id; every line has its own output id


class IdDigests:
    """The digests of records' ids in file order: 16 bytes a record."""

    def __init__(self) -> None:
        self._digests = bytearray()

    def add(self, id_: str) -> None:
        self._digests += hashlib.blake2b(id_.encode(), digest_size=DIGEST_BYTES).digest()

    def repeats(self) -> np.ndarray:
        """Ascending file indexes of the records whose id an earlier record has."""
        if not self._digests:
            return np.empty(0, dtype=np.int64)
        halves = np.frombuffer(self._digests, dtype=np.uint64).reshape(-1, 2)  # no copy
        order = np.lexsort((halves[:, 1], halves[:, 0]))  # stable: equal ids stay in file order
        ordered = halves[order]
        same = (ordered[1:] == ordered[:-1]).all(axis=1)
        return np.sort(order[1:][same]).astype(np.int64)


def by_part(specs: Iterable[PartSpec], repeats: np.ndarray) -> list[PartSpec]:
    """The specs, each with the repeats among its records."""
    out = []
    for spec in specs:
        lo, hi = np.searchsorted(repeats, [spec.first_record, spec.first_record + spec.records])
        out.append(replace(spec, duplicates=tuple(int(i) for i in repeats[lo:hi])))
    return out


def find_duplicates(storage: Storage, key: str, fmt: str, specs: list[PartSpec]) -> list[PartSpec]:
    """Read the file's parts again and give each spec its records that repeat an earlier id."""
    header = read_header(b"".join(storage.iter_bytes(key, 0, HEADER_PROBE_BYTES))) if fmt == CSV else None
    digests = IdDigests()
    for spec in specs:
        data = b"".join(storage.iter_bytes(key, spec.byte_start, spec.byte_end))
        records, errors = parse_part(
            data, fmt, first_line=spec.first_line, first_record=spec.first_record, fields=(), header=header
        )
        del data
        items: list[Record | RecordError] = sorted([*records, *errors], key=lambda item: item.index)
        for item in items:
            digests.add(item.id if item.id is not None else str(item.line))
    return by_part(specs, digests.repeats())


def duplicate_error(record: Record) -> RecordError:
    return RecordError(
        record.index,
        record.line,
        record.id,
        DUPLICATE_ID,
        f"the id {record.id!r} was used by an earlier record of the file; only the first one runs",
    )


def mark_duplicates(
    records: list[Record], errors: list[RecordError], duplicates: Collection[int] | None
) -> tuple[list[Record], list[RecordError]]:
    """A part's records and errors, its repeats (file indexes) turned into `duplicate_id` errors. A repeat
    that is an error already (it does not parse, lacks its field) keeps its own code."""
    if not duplicates:
        return records, errors
    repeated = set(duplicates)
    kept = [r for r in records if r.index not in repeated]
    return kept, errors + [duplicate_error(r) for r in records if r.index in repeated]
