"""The pure parts of retrying: which stretches of the parent are read again, the position map the child
input is written with, and merging the child's lines back into the parent's output in input order."""

from __future__ import annotations

import random

import orjson

from inferq.shared.records import parse_part
from inferq.shared.retry_merge import (
    Fill,
    PartRange,
    Slot,
    combine,
    error_index,
    fills,
    merge_lines,
    overlay,
    own_entries,
    parse_slot,
    slot_line,
    split_lines,
)
from inferq.shared.states import PartStatus
from inferq.worker.retry_input import (
    ParentPart,
    RetryWriter,
    Stretch,
    errored_stretches,
    unfinished_stretches,
)

DONE, FAILED, SKIPPED = PartStatus.DONE.value, PartStatus.FAILED.value, PartStatus.SKIPPED.value


def out(name: str) -> bytes:
    return orjson.dumps({"id": name}) + b"\n"


def test_child_lines_go_where_the_records_they_rerun_were() -> None:
    # given: a parent of 8 records whose records 2 and 5 errored (6 output lines), and a child over
    # those two in which record 5 failed again
    parent = [out(f"r{i}") for i in (0, 1, 3, 4, 6, 7)]
    slots = [Slot(index=2, before=2), Slot(index=5, before=4)]
    child = own_entries([out("c2")], [PartRange(0, 2, done=True)], error_indexes=[1], total=2)

    # when
    merged = list(merge_lines(parent, fills(child, slots)))

    # then: the child's line in record 2's place; record 5 stays missing
    assert merged == [out(n) for n in ("r0", "r1", "c2", "r3", "r4", "r6", "r7")]


def test_fills_at_the_start_and_end_and_a_child_that_never_ran() -> None:
    # given: records 0 and 3 of a 4-record parent missing, and the child's second part skipped
    parent = [out("r1"), out("r2")]
    slots = [Slot(0, 0), Slot(3, 2)]
    entries = list(own_entries([out("c0")], [PartRange(0, 1, True), PartRange(1, 1, False)], [], total=2))
    # then
    assert entries == [out("c0"), None]
    assert list(merge_lines(parent, fills(entries, slots))) == [out("c0"), out("r1"), out("r2")]
    # and a child with no parts at all (stopped before it was planned) fills nothing
    assert list(own_entries([], [], [], total=2)) == [None, None]


def test_the_newest_child_wins_where_two_filled_the_same_record() -> None:
    # given: two children of one parent; both reran record 4, only the older also record 1
    newest = [Fill(4, 3, b"new4\n")]
    oldest = [Fill(1, 1, b"old1\n"), Fill(4, 3, b"old4\n")]
    # when / then
    assert [f.line for f in combine([newest, oldest])] == [b"old1\n", b"new4\n"]


def test_a_retry_of_a_retry_fills_its_parent_by_index() -> None:
    # given: a child of 3 records whose record 1 failed again and was filled by its own child
    entries = own_entries([out("c0"), out("c2")], [PartRange(0, 3, True)], [1], total=3)
    grandchild = [Fill(1, 1, out("g1"))]
    # when / then
    assert list(overlay(entries, grandchild)) == [out("c0"), out("g1"), out("c2")]


def test_slots_error_indexes_and_lines_round_trip() -> None:
    assert parse_slot(slot_line(Slot(12, 7))) == Slot(12, 7)
    assert error_index(b'{"id":"a","line":9,"index":3,"error":{}}') == 3
    assert error_index(b'{"id":"a","line":9,"error":{}}') == 8  # a child's input: line = index + 1
    assert list(split_lines([b"a\nb", b"c\n", b"d"])) == [b"a\n", b"bc\n", b"d\n"]


def test_errored_stretches_group_error_lines_by_part_and_count_output_before() -> None:
    # given: parts of lines 1-10, 11-20 (given up on), 21-30 (done, no errors), 31-40 (skipped), 41-50
    parts = [
        ParentPart(0, 100, 1, 0, DONE, completed=8),
        ParentPart(100, 200, 11, 10, FAILED, completed=0),
        ParentPart(200, 300, 21, 20, DONE, completed=10),
        ParentPart(300, 400, 31, 30, SKIPPED, completed=0),
        ParentPart(400, 500, 41, 40, DONE, completed=9),
    ]
    error_lines = [3, 7, *range(11, 21), 44]
    # when
    stretches = list(errored_stretches(parts, error_lines))
    # then
    assert stretches == [
        Stretch(0, 100, 1, 0, before=0, lines=frozenset({3, 7})),
        Stretch(100, 200, 11, 10, before=8, lines=None),
        Stretch(400, 500, 41, 40, before=18, lines=frozenset({44})),
    ]
    assert list(unfinished_stretches(parts)) == [Stretch(300, 400, 31, 30, before=18, lines=None)]


def test_writer_keeps_ids_counts_unparseable_records_and_maps_positions() -> None:
    # given: a stretch of 5 lines: a good record, an errored one without an id, a line that is not JSON
    # (errored too), another good one, and an errored one with an integer id
    data = b'{"id":"a","text":"x"}\n{"text":"y"}\nnot json\n{"text":"z"}\n{"id":7,"text":"w"}\n'
    stretch = Stretch(0, len(data), 11, 10, before=4, lines=frozenset({12, 13, 15}))
    records, errors = parse_part(data, "jsonl", first_line=11, first_record=10, fields=())
    writer = RetryWriter()
    # when
    writer.add_stretch(stretch, records, errors)
    writer.input.seek(0)
    writer.map.seek(0)
    lines = [orjson.loads(line) for line in writer.input.read().splitlines()]
    slots = [parse_slot(line) for line in writer.map.read().splitlines()]
    writer.close()
    # then: ids are the parent's (line number when absent, as a string), positions follow the parent
    assert lines == [{"text": "y", "id": "12"}, {"id": "7", "text": "w"}]
    assert slots == [Slot(11, 5), Slot(14, 6)]
    assert (writer.records, writer.unretryable) == (2, 1)
    assert writer.fields == {"id", "text"}


def test_merge_matches_a_brute_force_model() -> None:
    rng = random.Random(7)
    for _ in range(200):
        # given: a parent of n records, each good, errored or never run; a child over the missing ones
        # where each fails again or not, laid out in parts some of which never ran
        n = rng.randint(0, 30)
        fate = [rng.choice("gge") for _ in range(n)]
        parent = [out(f"p{i}") for i in range(n) if fate[i] == "g"]
        missing = [i for i in range(n) if fate[i] != "g"]
        slots = [Slot(i, sum(1 for j in range(i) if fate[j] == "g")) for i in missing]
        child_ok = [rng.random() < 0.6 for _ in missing]
        parts, k = [], 0
        while k < len(missing):
            size = rng.randint(1, 4)
            parts.append(PartRange(k, min(size, len(missing) - k), done=rng.random() < 0.8))
            k += size
        ran = [
            next(p.done for p in parts if p.first_record <= i < p.first_record + p.records)
            for i in range(len(missing))
        ]
        child_lines = [out(f"c{missing[i]}") for i in range(len(missing)) if ran[i] and child_ok[i]]
        errors = [i for i in range(len(missing)) if ran[i] and not child_ok[i]]
        # when
        entries = own_entries(child_lines, parts, errors, len(missing))
        merged = list(merge_lines(parent, fills(entries, slots)))
        # then
        expected = []
        for i in range(n):
            if fate[i] == "g":
                expected.append(out(f"p{i}"))
            else:
                m = missing.index(i)
                if ran[m] and child_ok[m]:
                    expected.append(out(f"c{i}"))
        assert merged == expected
