"""Retry children (`POST /v1/jobs/{id}/retry`): the position map, and merging a child's lines into its
parent's output in input order. Pure: every function takes and returns iterators, so nothing is held whole.

A child's input holds the parent's records to run again, in the parent's input order, one per line. Its
position map (`shared.keys.retry_map_key`, JSONL) has one `Slot` per line of that input: the record's
0-based index in the parent's input, and how many of the parent's output lines come before it. The
parent's output has no indexes (one line per good record, in input order), so `before` is what places a
child's line among them; `index` orders the lines of several children and places a grandchild's lines
among its parent's entries (`overlay`).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import orjson


@dataclass(frozen=True)
class Slot:
    index: int  # 0-based index of the record in the parent's input
    before: int  # the parent's output lines that come before it


@dataclass(frozen=True)
class Fill:
    """A child's output line that takes the place of a record missing from the parent's output."""

    index: int
    before: int
    line: bytes


@dataclass(frozen=True)
class PartRange:
    """The records a job's part covered, and whether its output lines exist (a part that finished)."""

    first_record: int
    records: int
    done: bool


def slot_line(slot: Slot) -> bytes:
    return orjson.dumps({"index": slot.index, "before": slot.before}, option=orjson.OPT_APPEND_NEWLINE)


def parse_slot(line: bytes) -> Slot:
    obj = orjson.loads(line)
    return Slot(int(obj["index"]), int(obj["before"]))


def error_index(line: bytes) -> int:
    """The 0-based record index of an error-file line: its `index`, else `line` - 1 (a retry child's input
    has one record per line, no header, no blank lines)."""
    obj = orjson.loads(line)
    index = obj.get("index")
    return int(index) if isinstance(index, int) else int(obj["line"]) - 1


def own_entries(
    output_lines: Iterable[bytes], parts: Sequence[PartRange], error_indexes: Iterable[int], total: int
) -> Iterator[bytes | None]:
    """One entry per input record of a job, in order: its output line, or None when it has none (a bad
    record, a part that failed or never ran). `error_indexes` ascending; `parts` in index order."""
    lines = iter(output_lines)
    errors = iter(error_indexes)
    next_error = next(errors, None)
    position = 0
    for part in parts:
        while position < part.first_record:
            yield None
            position += 1
        for k in range(part.first_record, part.first_record + part.records):
            while next_error is not None and next_error < k:
                next_error = next(errors, None)
            if part.done and next_error != k:
                yield next(lines, None)
            else:
                yield None
        position = max(position, part.first_record + part.records)
    while position < total:
        yield None
        position += 1


def fills(entries: Iterable[bytes | None], slots: Iterable[Slot]) -> Iterator[Fill]:
    """The child's lines that exist, each with the place its slot gives it in the parent."""
    for slot, entry in zip(slots, entries, strict=False):
        if entry is not None:
            yield Fill(slot.index, slot.before, entry)


def combine(streams: Sequence[Iterable[Fill]]) -> Iterator[Fill]:
    """Several children's fills as one stream by parent index; `streams` newest child first, and where two
    children filled the same record the newest one's line wins."""
    if len(streams) == 1:
        yield from streams[0]
        return
    ranked = [((rank, fill) for fill in stream) for rank, stream in enumerate(streams)]
    last: int | None = None
    for _, fill in heapq.merge(*ranked, key=lambda item: (item[1].index, item[0])):
        if fill.index != last:
            last = fill.index
            yield fill


def overlay(entries: Iterable[bytes | None], fills_: Iterable[Fill]) -> Iterator[bytes | None]:
    """A job's entries with its own children's lines put in where it has none (by index)."""
    pending = iter(fills_)
    fill = next(pending, None)
    for k, entry in enumerate(entries):
        while fill is not None and fill.index < k:
            fill = next(pending, None)
        if fill is not None and fill.index == k:
            if entry is None:
                entry = fill.line
            fill = next(pending, None)
        yield entry


def merge_lines(parent_lines: Iterable[bytes], fills_: Iterable[Fill]) -> Iterator[bytes]:
    """The parent's output lines with the fills put in before the line their `before` names."""
    lines = iter(parent_lines)
    served = 0
    for fill in fills_:
        while served < fill.before:
            line = next(lines, None)
            if line is None:
                break
            yield line
            served += 1
        yield fill.line
    yield from lines


def split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The complete lines of a byte stream (newline included; a last line without one gets one), holding
    only the unfinished line."""
    pending = b""
    for chunk in chunks:
        data = pending + chunk if pending else chunk
        begin = 0
        while (cut := data.find(b"\n", begin)) >= 0:
            yield data[begin : cut + 1]
            begin = cut + 1
        pending = data[begin:]
    if pending:
        yield pending + b"\n"
