"""worker/duplicate_ids.py: finding the records that repeat an earlier id, and turning them into errors."""

from __future__ import annotations

from collections.abc import Iterator

from inferq.shared.jobs import PartSpec
from inferq.shared.records import CSV, Record, RecordError, plan_parts
from inferq.worker.duplicate_ids import DUPLICATE_ID, IdDigests, by_part, find_duplicates, mark_duplicates


def test_repeats_are_every_occurrence_after_the_first() -> None:
    # given: ids in file order, some repeated, one many times
    digests = IdDigests()
    for id_ in ["a", "1", "b", "1", "a", "c", "a", "d"]:
        digests.add(id_)
    # when / then: the later occurrences, ascending; the first of each stays
    assert digests.repeats().tolist() == [3, 4, 6]


def test_no_records_and_no_repeats() -> None:
    assert IdDigests().repeats().tolist() == []
    digests = IdDigests()
    for n in range(1000):
        digests.add(str(n))
    assert digests.repeats().tolist() == []


def test_repeats_go_to_the_part_holding_them() -> None:
    # given: three parts of 4, 4 and 2 records
    specs = [PartSpec(i, 0, 0, 1, first, n) for i, (first, n) in enumerate([(0, 4), (4, 4), (8, 2)])]
    digests = IdDigests()
    for id_ in ["a", "b", "c", "d", "a", "e", "f", "g", "b", "b"]:
        digests.add(id_)
    # when
    parts = by_part(specs, digests.repeats())
    # then
    assert [p.duplicates for p in parts] == [(), (4,), (8, 9)]


def test_mark_duplicates_turns_repeated_records_into_errors() -> None:
    # given: a part's records 10..12 and an error at 13; 11 and 13 repeat earlier ids
    records = [Record(10, 20, "x", "t"), Record(11, 21, "y", "t"), Record(12, 22, "z", "t")]
    errors = [RecordError(13, 23, "23", "invalid_json", "no")]
    # when
    kept, marked = mark_duplicates(records, errors, (11, 13))
    # then: the repeated record is a duplicate_id error with its line; an error keeps its own code
    assert [r.index for r in kept] == [10, 12]
    assert [(e.index, e.line, e.id, e.code) for e in marked] == [
        (13, 23, "23", "invalid_json"),
        (11, 21, "y", DUPLICATE_ID),
    ]
    assert mark_duplicates(records, errors, None) == (records, errors)


class BytesStorage:
    """The one stored file a planner reads, by byte range."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def iter_bytes(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        yield self.data[start:end]


def test_csv_repeats_across_parts_by_id_or_line_number() -> None:
    # given: a CSV in parts of 2 records: line 3 has no id (so "3"), line 4 says 3, line 5 says "1"
    data = b'id,text\n1,a\n,b\n3,c\n"1",d\n2,"two\nlines"\n7,e\n'
    specs, total = plan_parts(iter([data]), CSV, 2)
    assert total == 6 and len(specs) == 3
    # when
    parts = find_duplicates(BytesStorage(data), "key", CSV, specs)  # type: ignore[arg-type]
    # then: records 2 (line 4) and 3 (line 5) repeat; the quoted multi-line row is one record
    assert [p.duplicates for p in parts] == [(), (2, 3), ()]
