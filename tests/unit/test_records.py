"""Input records: format detection, the upload scan, part planning and part parsing."""

from __future__ import annotations

import hashlib
import itertools
import random
import time
import tracemalloc
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pytest

from inferq.shared.errors import TooLarge, Unprocessable, UnsupportedMediaType
from inferq.shared.jobs import PartSpec
from inferq.shared.records import (
    BOM,
    Record,
    RecordError,
    ScanResult,
    UploadScanner,
    detect_format,
    dumps_line,
    error_line,
    parse_part,
    plan_parts,
    read_header,
)

TEXT = ("text",)


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def scan(data: bytes, fmt: str, chunk_size: int = 1 << 20, max_records: int = 1_000_000) -> ScanResult:
    scanner = UploadScanner(fmt, max_records)
    for chunk in chunked(data, chunk_size):
        scanner.feed(chunk)
    return scanner.finish()


def parse_all(
    data: bytes, fmt: str, part_records: int, fields: tuple[str, ...] = TEXT, chunk_size: int = 1 << 20
) -> tuple[list[PartSpec], list[Record | RecordError]]:
    """Plan the file, parse every part, and return the parts and all outcomes ordered by index."""
    specs, total = plan_parts(chunked(data, chunk_size), fmt, part_records)
    header = read_header(data[: 1 << 20]) if fmt == "csv" else None
    outcomes: list[Record | RecordError] = []
    for spec in specs:
        records, errors = parse_part(
            data[spec.byte_start : spec.byte_end],
            fmt,
            first_line=spec.first_line,
            first_record=spec.first_record,
            fields=fields,
            header=header,
        )
        assert len(records) + len(errors) == spec.records
        outcomes.extend(records)
        outcomes.extend(errors)
    outcomes.sort(key=lambda o: o.index)
    assert total == len(outcomes)
    return specs, outcomes


def one(data: bytes, fmt: str = "jsonl", **kw: Any) -> Record | RecordError:
    kw.setdefault("fields", TEXT)
    records, errors = parse_part(data, fmt, first_line=kw.pop("first_line", 1), first_record=0, **kw)
    outcomes: list[Record | RecordError] = [*records, *errors]
    assert len(outcomes) == 1
    return outcomes[0]


# --------------------------------------------------------------------------------------------- detect_format


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.jsonl", "jsonl"),
        ("A.NDJSON", "jsonl"),
        ("data.json", "jsonl"),
        ("x.csv", "csv"),
        ("t.parquet", "parquet"),
    ],
)
def test_format_comes_from_the_extension(name: str, fmt: str) -> None:
    assert detect_format(name, b"whatever") == fmt


def test_format_from_magic_and_sniffing() -> None:
    # given files without a telling extension
    assert detect_format("upload", b"PAR1\x00\x01") == "parquet"
    assert detect_format("upload.txt", b'\n  {"text": "hi"}\n') == "jsonl"
    assert detect_format("upload", BOM + b'{"text": "hi"}\n') == "jsonl"
    assert detect_format("upload", b"id,text\n1,hello\n") == "csv"
    # a head cut inside a multi-byte character is still text
    assert detect_format("upload", "id,text\n1,é".encode()[:-1]) == "csv"


@pytest.mark.parametrize(
    "head", [b"\x89PNG\r\n\x1a\n\x00\x00", b"just some words\nmore words\n", b"", b"\xff\xfe{"]
)
def test_unknown_formats_are_refused(head: bytes) -> None:
    with pytest.raises(UnsupportedMediaType) as e:
        detect_format("upload.bin", head)
    assert e.value.code == "unsupported_file_type"
    assert e.value.status == 415
    assert "JSONL" in e.value.message and "CSV" in e.value.message


# --------------------------------------------------------------------------------------------- UploadScanner

JSONL_FILE = (
    b'{"id": "a", "text": "hello"}\n'
    b"\n"
    b'{"text": "x", "lang": "en"}\r\n'
    b"not json\n"
    b"   \n"
    b"[1, 2]\n"
    b'{"text": 3, "extra": null}'
)


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64, 1 << 20])
def test_scanner_counts_jsonl_in_any_chunking(chunk_size: int) -> None:
    # when the same file arrives in chunks of any size
    result = scan(JSONL_FILE, "jsonl", chunk_size)
    # then the counts are the same
    assert result == ScanResult(
        format="jsonl",
        bytes=len(JSONL_FILE),
        sha256=hashlib.sha256(JSONL_FILE).hexdigest(),
        records=5,
        parsed=3,
        bad_records=2,
        first_error=result.first_error,
        fields=["extra", "id", "lang", "text"],
    )
    assert result.first_error is not None and result.first_error.startswith(
        "line 4: the line is not valid JSON"
    )


@pytest.mark.parametrize("chunk_size", [1, 2, 1 << 20])
def test_scanner_ignores_a_bom(chunk_size: int) -> None:
    data = BOM + b'{"text": "a"}\n'
    result = scan(data, "jsonl", chunk_size)
    assert (result.records, result.parsed, result.fields, result.bytes) == (1, 1, ["text"], len(data))
    assert result.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("chunk_size", [1, 5, 1 << 20])
def test_scanner_counts_csv_rows_with_multiline_quotes(chunk_size: int) -> None:
    # given a header, a row whose quoted field spans three lines, a blank line and a row with too many cells
    data = b'id,text\r\n1,"line one\r\nline, two\r\n""three"""\r\n\r\n2,plain\r\n3,a,b\r\n4,'
    result = scan(data, "csv", chunk_size)
    assert (result.records, result.parsed, result.bad_records) == (4, 3, 1)
    assert result.fields == ["id", "text"]
    assert result.first_error == "line 7: the row has 3 cells but the header has 2 columns"


def test_scanner_refuses_non_utf8_naming_the_line() -> None:
    data = b'{"text": "ok"}\n{"text": "ok"}\n{"text": "caf\xe9"}\n'
    with pytest.raises(UnsupportedMediaType) as e:
        scan(data, "jsonl", 4)
    assert e.value.code == "invalid_encoding"
    assert "line 3" in e.value.message


def test_scanner_refuses_non_utf8_on_an_unterminated_last_line() -> None:
    with pytest.raises(UnsupportedMediaType) as e:
        scan(b"id,text\n1,\xff", "csv")
    assert e.value.code == "invalid_encoding" and "line 2" in e.value.message


def test_scanner_stops_as_soon_as_there_are_too_many_records() -> None:
    # given a limit of 3 records
    scanner = UploadScanner("jsonl", 3)
    scanner.feed(b'{"text": "a"}\n{"text": "b"}\n\n{"text": "c"}\n')
    # when a fourth record arrives, then the feed itself raises
    with pytest.raises(Unprocessable) as e:
        scanner.feed(b'{"text": "d"}\n')
    assert e.value.code == "too_many_records"


def test_scanner_needs_one_record_that_parses() -> None:
    with pytest.raises(Unprocessable) as e:
        scan(b"nope\n[1]\n", "jsonl")
    assert e.value.code == "no_valid_records"
    assert "line 1" in e.value.message and "not valid JSON" in e.value.message


@pytest.mark.parametrize(
    ("data", "fmt"),
    [(b"", "jsonl"), (b"\n \n\r\n", "jsonl"), (BOM, "jsonl"), (b"", "csv"), (b"id,text\n\n", "csv")],
)
def test_scanner_refuses_empty_files(data: bytes, fmt: str) -> None:
    with pytest.raises(Unprocessable) as e:
        scan(data, fmt)
    assert e.value.code == "empty_file"


def test_scanner_caps_the_line_length() -> None:
    # given a line longer than the cap, arriving in small chunks
    scanner = UploadScanner("jsonl", 10, max_line_bytes=1000)
    scanner.feed(b'{"text": "a"}\n')
    with pytest.raises(TooLarge) as e:
        for _ in range(30):
            scanner.feed(b"x" * 100)
    assert e.value.code == "line_too_long"
    assert "line 2" in e.value.message


def test_scanner_caps_a_long_line_that_arrives_in_one_chunk() -> None:
    scanner = UploadScanner("jsonl", 10, max_line_bytes=100)
    with pytest.raises(TooLarge) as e:
        scanner.feed(b'{"text": "a"}\n' + b"x" * 300 + b"\n")
    assert "line 2" in e.value.message


def test_scanner_caps_an_unclosed_csv_quote() -> None:
    scanner = UploadScanner("csv", 1000, max_line_bytes=1000)
    scanner.feed(b'id,text\n1,"never closed\n')
    with pytest.raises(TooLarge) as e:
        for _ in range(100):
            scanner.feed(b"more text\n")
    assert "line 2" in e.value.message and "unclosed" in e.value.message


def test_scanner_caps_the_field_list() -> None:
    data = b"".join(orjson.dumps({f"k{i:04d}": i, "text": "t"}) + b"\n" for i in range(300))
    result = scan(data, "jsonl")
    assert len(result.fields) == 200 and result.fields == sorted(result.fields)


def test_scanner_memory_stays_bounded() -> None:
    # given an 8 MB upload in 256 KiB chunks
    line = orjson.dumps({"text": "word " * 40}) + b"\n"
    chunk = line * (256 * 1024 // len(line))
    scanner = UploadScanner("jsonl", 10_000_000)
    tracemalloc.start()
    try:
        for _ in range(32):
            scanner.feed(chunk)
        result = scanner.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # then it held a few chunks at most, never the file
    assert result.records == 32 * chunk.count(b"\n")
    assert peak < 4 * len(chunk)


def test_parquet_is_refused_clearly() -> None:
    with pytest.raises(UnsupportedMediaType, match="Parquet"):
        UploadScanner("parquet", 10)


# --------------------------------------------------------------------------------------------- read_header


def test_read_header() -> None:
    assert read_header(BOM + b"id, text ,label\r\n1,a,b\r\n") == ["id", "text", "label"]
    assert read_header(b'\n\n"id","multi\nline"\nx,y\n') == ["id", "multi\nline"]
    assert read_header(b"text") == ["text"]


@pytest.mark.parametrize(
    ("data", "code"),
    [(b"id,text,id\n", "invalid_csv_header"), (b"", "empty_file"), (b"\n\n", "empty_file")],
)
def test_read_header_refusals(data: bytes, code: str) -> None:
    with pytest.raises(Unprocessable) as e:
        read_header(data)
    assert e.value.code == code


def test_read_header_needs_utf8() -> None:
    with pytest.raises(UnsupportedMediaType):
        read_header(b"t\xffext\n")


# --------------------------------------------------------------------------------------------- parse_part


@pytest.mark.parametrize(
    ("line", "code", "in_message"),
    [
        (b'{"text": "a"', "invalid_json", "not valid JSON"),
        (b'"just a string"', "not_an_object", "got string"),
        (b"[1, 2]", "not_an_object", "got array"),
        (b"12", "not_an_object", "got number"),
        (b'{"txt": "a"}', "missing_field", "'text'"),
        (b'{"text": 12}', "invalid_type", "got number"),
        (b'{"text": null}', "invalid_type", "got null"),
        (b'{"text": ["a"]}', "invalid_type", "got array"),
        (b'{"id": 1.5, "text": "a"}', "invalid_id", "got number"),
        (b'{"id": true, "text": "a"}', "invalid_id", "got boolean"),
        (b'{"id": "", "text": "a"}', "invalid_id", "empty string"),
        (b'{"id": ["x"], "text": "a"}', "invalid_id", "got array"),
        (b'{"text": "caf\xe9"}', "invalid_encoding", "UTF-8"),
    ],
)
def test_every_malformed_jsonl_line_is_one_error(line: bytes, code: str, in_message: str) -> None:
    # given a bad line between two good ones, on lines 7..9 of the file
    data = b'{"text": "before"}\n' + line + b'\n{"text": "after"}\n'
    # when
    records, errors = parse_part(data, "jsonl", first_line=7, first_record=40, fields=TEXT)
    # then
    assert [(r.index, r.line, r.value) for r in records] == [(40, 7, "before"), (42, 9, "after")]
    assert len(errors) == 1
    err = errors[0]
    assert (err.index, err.line, err.code) == (41, 8, code)
    assert in_message in err.message


def test_ids_from_records_or_line_numbers() -> None:
    data = b'{"id": "a-1", "text": "x"}\n\n{"id": 42, "text": "y"}\n{"text": "z"}\n{"id": null, "text": "w"}'
    records, errors = parse_part(data, "jsonl", first_line=10, first_record=0, fields=TEXT)
    assert errors == []
    assert [(r.id, r.line) for r in records] == [("a-1", 10), ("42", 12), ("13", 13), ("14", 14)]


def test_an_error_keeps_the_id_it_can_tell_else_the_line_number() -> None:
    err = one(b'{"id": "r7", "text": 5}\n')
    assert isinstance(err, RecordError) and err.id == "r7"
    err = one(b'{"text": 5}\n', first_line=3)
    assert isinstance(err, RecordError) and err.id == "3"
    err = one(b"{oops\n", first_line=5)
    assert isinstance(err, RecordError) and err.id == "5"


def test_too_long_ids_are_refused() -> None:
    err = one(orjson.dumps({"id": "x" * 513, "text": "a"}))
    assert isinstance(err, RecordError) and err.code == "invalid_id"


def test_field_preference_and_alternatives() -> None:
    fields = ("image", "image_key")
    rec = one(b'{"image_key": "k.png"}', fields=fields)
    assert isinstance(rec, Record) and rec.value == "k.png"
    rec = one(b'{"image": "b64", "image_key": "k.png"}', fields=fields)
    assert isinstance(rec, Record) and rec.value == "b64"
    err = one(b'{"text": "a"}', fields=fields)
    assert isinstance(err, RecordError) and err.code == "missing_field"
    assert "'image'" in err.message and "'image_key'" in err.message


def test_no_fields_gives_the_whole_record() -> None:
    rec = one(b'{"text": "a", "label": "pos"}', fields=())
    assert isinstance(rec, Record) and rec.value == {"text": "a", "label": "pos"}


def test_bom_is_dropped_only_at_the_start_of_the_file() -> None:
    rec = one(BOM + b'{"text": "a"}\n', first_line=1)
    assert isinstance(rec, Record)
    err = one(BOM + b'{"text": "a"}\n', first_line=5)
    assert isinstance(err, RecordError) and err.code == "invalid_json"


CSV_HEADER = ["id", "text", "label"]


def test_csv_rows() -> None:
    # given rows after a header on line 1 (the part starts on line 2)
    data = (
        b'1,"multi\nline, with ""quotes""",pos\n'  # lines 2-3
        b"\n"  # 4: blank
        b"2,plain,neg\r\n"  # 5
        b",no id,\r\n"  # 6: empty id cell -> line number
        b"4,,x\n"  # 7: empty text cell -> missing
        b"5\n"  # 8: short row, no text column
        b"6,a,b,c\n"  # 9: too many cells
        b'7,"unclosed'  # 10: a quote never closed at the end of the data
    )
    records, errors = parse_part(data, "csv", first_line=2, first_record=0, fields=TEXT, header=CSV_HEADER)
    assert [(r.index, r.line, r.id, r.value) for r in records] == [
        (0, 2, "1", 'multi\nline, with "quotes"'),
        (1, 5, "2", "plain"),
        (2, 6, "6", "no id"),
        (6, 10, "7", "unclosed"),
    ]
    assert [(e.index, e.line, e.id, e.code) for e in errors] == [
        (3, 7, "4", "missing_field"),
        (4, 8, "5", "missing_field"),
        (5, 9, "9", "invalid_csv_row"),
    ]
    assert "4 cells" in errors[2].message and "3 columns" in errors[2].message


def test_csv_quotes_inside_unquoted_fields_are_literal() -> None:
    # as Python's csv module reads them: the row does not run on to the next line
    data = b'1,he said "hi,x\n2,next,y\n'
    records, errors = parse_part(data, "csv", first_line=2, first_record=0, fields=TEXT, header=CSV_HEADER)
    assert errors == []
    assert [(r.line, r.value) for r in records] == [(2, 'he said "hi'), (3, "next")]


def test_csv_invalid_encoding_is_per_row() -> None:
    records, errors = parse_part(
        b"1,ok,a\n2,caf\xe9,b\n", "csv", first_line=2, first_record=0, fields=TEXT, header=CSV_HEADER
    )
    assert [r.line for r in records] == [2]
    assert [(e.line, e.code) for e in errors] == [(3, "invalid_encoding")]


def test_csv_needs_the_header() -> None:
    with pytest.raises(ValueError, match="header"):
        parse_part(b"1,a\n", "csv", first_line=2, first_record=0, fields=TEXT)


# --------------------------------------------------------------------------------------------- plan_parts


def test_jsonl_parts_cut_at_record_boundaries() -> None:
    # given 5 records over 7 lines (line 2 and 5 blank), no final newline
    lines = [b'{"text":"a"}', b"", b'{"text":"b"}', b'{"text":"c"}', b"  ", b'{"text":"d"}', b'{"text":"e"}']
    data = b"\n".join(lines)
    offsets = np.cumsum([0] + [len(x) + 1 for x in lines]).tolist()
    # when planned 2 records a part
    specs, total = plan_parts(chunked(data, 5), "jsonl", 2)
    # then parts start at their first record (blank lines stay with the part before) and cover the file
    assert total == 5
    assert specs == [
        PartSpec(0, 0, offsets[3], 1, 0, 2),
        PartSpec(1, offsets[3], offsets[6], 4, 2, 2),
        PartSpec(2, offsets[6], len(data), 7, 4, 1),
    ]


def test_csv_parts_skip_the_header_and_keep_quoted_rows_whole() -> None:
    data = BOM + b'id,text\n1,"a\nb"\n2,"c\n\nd"\n3,e\n'
    specs, total = plan_parts([data], "csv", 1)
    assert total == 3
    start = len(BOM) + len(b"id,text\n")
    assert [(s.byte_start, s.first_line, s.first_record, s.records) for s in specs] == [
        (start, 2, 0, 1),
        (start + 8, 4, 1, 1),
        (start + 8 + 9, 7, 2, 1),
    ]
    assert specs[-1].byte_end == len(data)


@pytest.mark.parametrize("data", [b"id,text\n", b"id,text", b"\n\nid,text\n\n\n", b""])
def test_a_csv_file_with_only_a_header_has_no_parts(data: bytes) -> None:
    assert plan_parts([data], "csv", 10) == ([], 0)


@pytest.mark.parametrize("data", [b"", b"\n\n  \n", BOM])
def test_a_jsonl_file_without_records_has_no_parts(data: bytes) -> None:
    assert plan_parts([data], "jsonl", 10) == ([], 0)


def test_jsonl_bom_is_outside_the_first_part() -> None:
    data = BOM + b'{"text":"a"}\n'
    specs, _ = plan_parts(chunked(data, 1), "jsonl", 10)
    assert (specs[0].byte_start, specs[0].byte_end, specs[0].first_line) == (3, len(data), 1)


def test_planning_is_fast_on_large_files() -> None:
    # given 200,000 JSONL records and 100,000 CSV rows
    jsonl = b"".join(orjson.dumps({"id": i, "text": f"record number {i}"}) + b"\n" for i in range(200_000))
    csv_data = b"id,text\n" + b"".join(b'%d,"row, %d"\n' % (i, i) for i in range(100_000))
    # when planned from 1 MiB chunks
    started = time.perf_counter()
    specs, total = plan_parts(chunked(jsonl, 1 << 20), "jsonl", 2000)
    jsonl_seconds = time.perf_counter() - started
    started = time.perf_counter()
    csv_specs, csv_total = plan_parts(chunked(csv_data, 1 << 20), "csv", 2000)
    csv_seconds = time.perf_counter() - started
    # then
    assert (total, len(specs), csv_total, len(csv_specs)) == (200_000, 100, 100_000, 50)
    assert jsonl_seconds < 1.0, jsonl_seconds
    assert csv_seconds < 3.0, csv_seconds


# --------------------------------------------------------------------------------------------- property test


@dataclass
class Expected:
    line: int
    id: str | None
    value: str | None  # None: an error
    code: str | None = None


def random_jsonl(rng: random.Random) -> tuple[bytes, list[Expected]]:
    lines: list[bytes] = []
    expected: list[Expected] = []
    for _ in range(rng.randint(0, 40)):
        line_no = len(lines) + 1
        kind = rng.random()
        text = rng.choice(["", "a", "héllo wörld", "x" * rng.randint(1, 300), "{not\\n json}", "tab\there"])
        if kind < 0.15:
            lines.append(rng.choice([b"", b" ", b"\t", b"\r"]))
            continue
        if kind < 0.25:
            lines.append(b'{"text": "broken')
            expected.append(Expected(line_no, str(line_no), None, "invalid_json"))
        elif kind < 0.3:
            lines.append(b"[1]")
            expected.append(Expected(line_no, str(line_no), None, "not_an_object"))
        elif kind < 0.4:
            lines.append(orjson.dumps({"id": f"r{line_no}", "body": text}))
            expected.append(Expected(line_no, f"r{line_no}", None, "missing_field"))
        elif kind < 0.7:
            lines.append(orjson.dumps({"id": line_no * 10, "text": text}))
            expected.append(Expected(line_no, str(line_no * 10), text))
        else:
            lines.append(orjson.dumps({"text": text}))
            expected.append(Expected(line_no, str(line_no), text))
        if rng.random() < 0.2:
            lines[-1] += b"\r"
    data = b"\n".join(lines)
    if lines and rng.random() < 0.5:
        data += b"\n"
    if rng.random() < 0.2:
        data = BOM + data
    return data, expected


def csv_cell(value: str) -> bytes:
    if any(c in value for c in ',"\n'):
        return b'"' + value.replace('"', '""').encode() + b'"'
    return value.encode()


def random_csv(rng: random.Random) -> tuple[bytes, list[Expected]]:
    rows: list[bytes] = [b"id,text,label"]
    line_no = 1
    expected: list[Expected] = []
    for _ in range(rng.randint(0, 40)):
        line_no += rows[-1].count(b"\n") + 1
        kind = rng.random()
        text = rng.choice(["a", "two\nlines", 'say "hi"', "a,b", "\n\n", "é", '"', "x" * rng.randint(1, 200)])
        if kind < 0.15:
            rows.append(rng.choice([b"", b"  ", b"\r"]))
            continue
        if kind < 0.25:
            rows.append(b"1,a,b,c")
            expected.append(Expected(line_no, str(line_no), None, "invalid_csv_row"))
        elif kind < 0.35:
            rows.append(b"r%d,,lbl" % line_no)
            expected.append(Expected(line_no, f"r{line_no}", None, "missing_field"))
        elif kind < 0.7:
            rows.append(b"r%d,%s,%s" % (line_no, csv_cell(text), csv_cell(rng.choice(["x", "y\nz"]))))
            expected.append(Expected(line_no, f"r{line_no}", text))
        else:
            rows.append(b",%s" % csv_cell(text))
            expected.append(Expected(line_no, str(line_no), text))
        if rng.random() < 0.2:
            rows[-1] += b"\r"
    data = b"\n".join(rows)
    if rng.random() < 0.5:
        data += b"\n"
    if rng.random() < 0.2:
        data = BOM + data
    return data, expected


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_random_files_parse_every_record_once_in_order(fmt: str) -> None:
    rng = random.Random(1234)
    for _ in range(300):
        # given a random file: blank lines, bad records, CRLF, quoted multi-line CSV fields, maybe a BOM
        data, expected = random_jsonl(rng) if fmt == "jsonl" else random_csv(rng)
        part_records = rng.randint(1, 12)
        chunk_size = rng.choice([1, 3, 17, 256, 1 << 20])
        # when planned and parsed part by part
        specs, outcomes = parse_all(data, fmt, part_records, chunk_size=chunk_size)
        # then every record comes out once, in order, with its physical line, id and value or error
        got = [
            Expected(o.line, o.id, o.value, None)
            if isinstance(o, Record)
            else Expected(o.line, o.id, None, o.code)
            for o in outcomes
        ]
        assert got == expected, data
        assert [o.index for o in outcomes] == list(range(len(expected)))
        # and the parts are contiguous, full but for the last, and end at the end of the file
        for before, after in itertools.pairwise(specs):
            assert before.byte_end == after.byte_start
            assert before.records == part_records
        if specs:
            assert specs[-1].byte_end == len(data)
            assert 1 <= specs[-1].records <= part_records
        # and the upload scan agrees on the counts
        structural = sum(
            1 for e in expected if e.code in {"invalid_json", "not_an_object", "invalid_csv_row"}
        )
        if len(expected) > structural:
            result = scan(data, fmt, chunk_size)
            assert (result.records, result.bad_records) == (len(expected), structural)
        elif expected:
            with pytest.raises(Unprocessable, match="none of the file's"):
                scan(data, fmt, chunk_size)


# --------------------------------------------------------------------------------------------- writing lines


def test_dumps_line_and_error_line() -> None:
    line = dumps_line({"id": "1", "embedding": np.array([0.5, 0.25], dtype=np.float32)})
    assert line == b'{"id":"1","embedding":[0.5,0.25]}\n'
    err = RecordError(index=3, line=9, id=None, code="invalid_json", message="bad")
    assert orjson.loads(error_line(err)) == {
        "id": None,
        "line": 9,
        "index": 3,
        "error": {"code": "invalid_json", "message": "bad"},
    }
    assert error_line(err).endswith(b"\n") and error_line(err).count(b"\n") == 1
