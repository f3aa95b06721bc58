"""Input records: format detection, the upload scan, planning parts by byte range, and parsing a part.

Formats: JSONL (one JSON object per line) and CSV (a header row, then one record per row; quoted fields may
span lines). Parquet is detected and refused with a clear message. Everything streams with bounded memory:
only the unfinished line (or, for CSV, the unfinished quoted record) is held, capped at `MAX_LINE_BYTES`.

Shared rules
- A physical line ends at ``\\n`` (a ``\\r`` before it is ignored). Line numbers are 1-based and physical;
  the CSV header is line 1 (or the first non-blank line after leading blank lines).
- A blank line (only ASCII whitespace) counts for line numbers but is not a record.
- A UTF-8 byte order mark at the start of the file is accepted and ignored.
- CSV: an empty cell counts as absent (for ``id`` and for the input field); a row with fewer cells than
  the header lacks the trailing columns; quoting follows Python's ``csv`` module (RFC 4180 quotes,
  ``""`` inside a quoted field, a quote inside an unquoted field is a literal character).

Per-record error codes (`RecordError.code`, written to a job's error file):

==================  ==========================================================================
code                meaning
==================  ==========================================================================
invalid_json        the line is not valid JSON
not_an_object       the line is JSON but not an object (``[1, 2]``, ``"text"``, ``3``)
missing_field       the record lacks the task's input field (the message names it)
invalid_type        the input field is not a string (``"text": 12``)
invalid_id          ``id`` is neither a non-empty string nor an integer, or longer than 512 characters
invalid_encoding    the record's bytes are not UTF-8
invalid_csv_row     a CSV row with more cells than the header, or whose quoting cannot be read
==================  ==========================================================================
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from inferq.shared.errors import TooLarge, Unprocessable, UnsupportedMediaType
from inferq.shared.jobs import PartSpec

log = logging.getLogger(__name__)

JSONL = "jsonl"
CSV = "csv"
PARQUET = "parquet"
FORMATS = (JSONL, CSV, PARQUET)

MAX_LINE_BYTES = 64 * 1024 * 1024
MAX_FIELDS = 200
MAX_ID_CHARS = 512
MAX_MESSAGE_CHARS = 300

BOM = codecs.BOM_UTF8
_EXTENSIONS = {".jsonl": JSONL, ".ndjson": JSONL, ".json": JSONL, ".csv": CSV, ".parquet": PARQUET}
_WHITESPACE = b" \t\n\r\x0b\x0c"  # what bytes.strip() removes: a line of only these is blank
_NOT_WHITESPACE = np.ones(256, dtype=np.bool_)
_NOT_WHITESPACE[list(_WHITESPACE)] = False


# ---------------------------------------------------------------------------------------------------------
# Format detection


def detect_format(filename: str, head: bytes) -> str:
    """The file's format from its name, else its magic bytes, else a sniff of its first bytes."""
    name = (filename or "").lower()
    for ext, fmt in _EXTENSIONS.items():
        if name.endswith(ext):
            return fmt
    if head.startswith(b"PAR1"):
        return PARQUET
    text = _decode_head(head.removeprefix(BOM))
    if text is not None:
        stripped = text.lstrip()
        if stripped.startswith("{"):
            return JSONL
        first_line = stripped.split("\n", 1)[0]
        if "," in first_line:
            return CSV
    raise UnsupportedMediaType(
        f"cannot tell the format of {filename!r}: expected JSONL (one JSON object per line, .jsonl) "
        "or CSV with a header row (.csv)",
        field="file",
    )


def _decode_head(head: bytes) -> str | None:
    """The head as text, tolerating a multi-byte character cut at its end; None if it is not text."""
    if b"\x00" in head:
        return None
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return None


def _check_format(fmt: str) -> None:
    if fmt == PARQUET:
        raise UnsupportedMediaType(
            "Parquet files are not supported by this server; upload JSONL or CSV", field="file"
        )
    if fmt not in (JSONL, CSV):
        raise UnsupportedMediaType(f"unknown record format {fmt!r}; expected jsonl or csv", field="file")


# ---------------------------------------------------------------------------------------------------------
# Streaming helpers


class _LineSplitter:
    """Cuts a byte stream into blocks of whole lines, holding only the unfinished last line."""

    def __init__(self, max_line_bytes: int) -> None:
        self.max_line_bytes = max_line_bytes
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._started = False
        self.bom = False
        self.total_bytes = 0  # bytes fed, BOM included
        self.lines_done = 0  # complete lines handed out so far

    def feed(self, chunk: bytes) -> bytes:
        """The complete lines (ending with b"\\n") that this chunk finishes; b"" when none."""
        self.total_bytes += len(chunk)
        if not self._started:
            if self._pending_len + len(chunk) < len(BOM) and BOM.startswith(b"".join(self._pending) + chunk):
                self._pending.append(chunk)
                self._pending_len += len(chunk)
                return b""
            self._started = True
            if self._pending:
                chunk = b"".join(self._pending) + chunk
                self._pending, self._pending_len = [], 0
            if chunk.startswith(BOM):
                self.bom = True
                chunk = chunk[len(BOM) :]
        last = chunk.rfind(b"\n")
        if last < 0:
            self._hold(chunk)
            return b""
        if self._pending:
            first = chunk.find(b"\n")
            if self._pending_len + first > self.max_line_bytes:
                raise self.too_long(self.lines_done + 1)
            block = b"".join([*self._pending, chunk[: last + 1]])
            self._pending, self._pending_len = [], 0
        else:
            block = chunk[: last + 1]
        self._hold(chunk[last + 1 :])
        self.lines_done += block.count(b"\n")
        return block

    def finish(self) -> bytes:
        """The last line when the stream does not end with a newline (without one), else b""."""
        rest = b"".join(self._pending)
        self._pending, self._pending_len = [], 0
        return rest

    def _hold(self, piece: bytes) -> None:
        if piece:
            self._pending.append(piece)
            self._pending_len += len(piece)
            if self._pending_len > self.max_line_bytes:
                raise self.too_long(self.lines_done + 1)

    def too_long(self, line: int) -> TooLarge:
        return TooLarge(
            f"line {line} is longer than {_size(self.max_line_bytes)}; "
            "each record must fit on a line under that size",
            field="file",
            code="line_too_long",
        )


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n >= 1024 * 1024 else f"{n} bytes"


def _csv_in_quote(line: bytes, in_quote: bool) -> bool:
    """Whether a CSV line (without its newline) ends inside a quoted field, given the state it starts in.

    Mirrors Python's csv module: a field is quoted only if its first character is a quote; inside it
    `""` is a quote character; after the closing quote the field runs on unquoted to the next comma.
    """
    if not in_quote and b'"' not in line:
        return False
    pos, n = 0, len(line)
    while True:
        if not in_quote:
            if pos < n and line[pos] == 0x22:  # '"' opens a quoted field
                in_quote, pos = True, pos + 1
            else:
                comma = line.find(b",", pos)
                if comma < 0:
                    return False
                pos = comma + 1
                continue
        quote = line.find(b'"', pos)
        if quote < 0:
            return True
        if quote + 1 < n and line[quote + 1] == 0x22:  # "" inside a quoted field
            pos = quote + 2
            continue
        in_quote = False
        comma = line.find(b",", quote + 1)
        if comma < 0:
            return False
        pos = comma + 1


def _is_blank(line: bytes) -> bool:
    return not line.strip(_WHITESPACE)


@dataclass
class _CsvRecord:
    line: int  # physical line of its first line
    start: int  # byte offset of its first line
    data: bytes  # the record without its final newline (inner newlines kept)


class _CsvAssembler:
    """Joins physical CSV lines into records, honoring quoted fields that span lines."""

    def __init__(self, max_record_bytes: int) -> None:
        self.max_record_bytes = max_record_bytes
        self._pieces: list[bytes] = []
        self._size = 0
        self._line = 0
        self._start = 0

    def line(self, data: bytes, line: int, start: int) -> _CsvRecord | None:
        """Feed one physical line (no newline); the record it completes, if any (blank lines give none)."""
        if not self._pieces:
            if _is_blank(data):
                return None
            if not _csv_in_quote(data, False):
                return _CsvRecord(line, start, data.rstrip(b"\r"))
            self._pieces, self._size, self._line, self._start = [data], len(data), line, start
            return None
        self._pieces.append(data)
        self._size += len(data) + 1
        if self._size > self.max_record_bytes:
            raise TooLarge(
                f"the CSV record starting at line {self._line} is longer than "
                f"{_size(self.max_record_bytes)}: is a quoted field left unclosed?",
                field="file",
                code="line_too_long",
            )
        if _csv_in_quote(data, True):
            return None
        return self._flush()

    def finish(self) -> _CsvRecord | None:
        """The record left open at the end of the data (a quoted field that never closes)."""
        return self._flush() if self._pieces else None

    def _flush(self) -> _CsvRecord:
        record = _CsvRecord(self._line, self._start, b"\n".join(self._pieces).rstrip(b"\r"))
        self._pieces, self._size = [], 0
        return record


def _split_csv(text: str) -> list[str] | None:
    """The cells of one CSV record, or None when its quoting cannot be read as a single row."""
    if '"' not in text and "\r" not in text:
        return text.split(",")
    try:
        rows = list(csv.reader([text]))
    except csv.Error:
        return None
    return rows[0] if len(rows) == 1 else None


def _decode(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _header_from(text: str) -> list[str]:
    cells = _split_csv(text)
    if cells is None:
        raise Unprocessable(
            "the CSV header row cannot be read: check its quotes", field="file", code="invalid_csv_header"
        )
    header = [c.strip() for c in cells]
    dupes = sorted(name for name, n in Counter(header).items() if n > 1)
    if dupes:
        raise Unprocessable(
            f"the CSV header names {', '.join(repr(d) for d in dupes)} more than once",
            field="file",
            code="invalid_csv_header",
        )
    return header


def read_header(first_bytes: bytes) -> list[str]:
    """The column names of a CSV file from its first bytes (the first non-blank record)."""
    data = first_bytes.removeprefix(BOM)
    assembler = _CsvAssembler(MAX_LINE_BYTES)
    offset = 0
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        record = assembler.line(raw, number, offset)
        offset += len(raw) + 1
        if record is None and number == len(lines):
            record = assembler.finish()
        if record is not None:
            text = _decode(record.data)
            if text is None:
                raise UnsupportedMediaType(
                    f"line {record.line} (the CSV header) is not valid UTF-8 text",
                    field="file",
                    code="invalid_encoding",
                )
            return _header_from(text)
    raise Unprocessable("the CSV file has no header row", field="file", code="empty_file")


# ---------------------------------------------------------------------------------------------------------
# Upload scan


@dataclass(frozen=True)
class ScanResult:
    format: str
    bytes: int
    sha256: str
    records: int
    parsed: int
    bad_records: int
    first_error: str | None
    fields: list[str] = field(default_factory=list)


class UploadScanner:
    """Fed an upload chunk by chunk while it streams to storage; counts and checks its records.

    Memory stays bounded: only the unfinished line (or CSV record) is held, up to `max_line_bytes`.
    """

    def __init__(self, fmt: str, max_records: int, *, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        _check_format(fmt)
        self.fmt = fmt
        self.max_records = max_records
        self._splitter = _LineSplitter(max_line_bytes)
        self._csv = _CsvAssembler(max_line_bytes)
        self._sha = hashlib.sha256()
        self._bytes = 0
        self._line = 0  # physical lines completed
        self._records = 0
        self._parsed = 0
        self._first_error: str | None = None
        self._keys: set[str] = set()
        self._header: list[str] | None = None
        self._finished = False

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._sha.update(chunk)
        self._bytes += len(chunk)
        self._lines(self._splitter.feed(chunk))

    def finish(self) -> ScanResult:
        if not self._finished:
            self._finished = True
            rest = self._splitter.finish()
            if rest:
                self._lines(rest + b"\n")
            if self.fmt == CSV:
                record = self._csv.finish()
                if record is not None:
                    self._csv_record(record)
        if self._bytes == 0 or (self._records == 0 and self._header is None):
            raise Unprocessable("the file is empty: it has no records", field="file", code="empty_file")
        if self._records == 0:
            raise Unprocessable("the CSV file has a header but no data rows", field="file", code="empty_file")
        if self._parsed == 0:
            raise Unprocessable(
                f"none of the file's {self._records} records can be read; "
                f"the first problem: {self._first_error}",
                field="file",
                code="no_valid_records",
            )
        fields = list(self._header) if self._header is not None else sorted(self._keys)
        return ScanResult(
            format=self.fmt,
            bytes=self._bytes,
            sha256=self._sha.hexdigest(),
            records=self._records,
            parsed=self._parsed,
            bad_records=self._records - self._parsed,
            first_error=self._first_error,
            fields=fields,
        )

    def _lines(self, block: bytes) -> None:
        if not block:
            return
        try:
            block.decode("utf-8")
        except UnicodeDecodeError as e:
            line = self._line + block.count(b"\n", 0, e.start) + 1
            column = e.start - block.rfind(b"\n", 0, e.start)
            raise UnsupportedMediaType(
                f"line {line} is not valid UTF-8 text (at byte {column} of the line); "
                "JSONL and CSV files must be UTF-8",
                field="file",
                code="invalid_encoding",
            ) from e
        lines = block.split(b"\n")
        lines.pop()  # the block ends with a newline
        if len(block) > self._splitter.max_line_bytes:  # a long line may have come whole in one chunk
            for number, raw in enumerate(lines, start=self._line + 1):
                if len(raw) > self._splitter.max_line_bytes:
                    raise self._splitter.too_long(number)
        if self.fmt == JSONL:
            for raw in lines:
                self._line += 1
                if not _is_blank(raw):
                    self._jsonl_record(raw)
        else:
            for raw in lines:
                self._line += 1
                record = self._csv.line(raw, self._line, 0)
                if record is not None:
                    self._csv_record(record)

    def _count(self) -> None:
        self._records += 1
        if self._records > self.max_records:
            raise Unprocessable(
                f"the file has more than {self.max_records} records (the limit per file); split it",
                field="file",
                code="too_many_records",
            )

    def _bad(self, line: int, message: str) -> None:
        if self._first_error is None:
            self._first_error = f"line {line}: {message}"

    def _jsonl_record(self, raw: bytes) -> None:
        self._count()
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            self._bad(self._line, _invalid_json_message(e))
            return
        if not isinstance(obj, dict):
            self._bad(self._line, _not_object_message(obj))
            return
        self._parsed += 1
        if len(self._keys) < MAX_FIELDS:
            for key in obj:
                self._keys.add(key)
                if len(self._keys) >= MAX_FIELDS:
                    break

    def _csv_record(self, record: _CsvRecord) -> None:
        text = record.data.decode("utf-8")  # the block was checked as a whole
        if self._header is None:
            self._header = _header_from(text)
            return
        self._count()
        cells = _split_csv(text)
        if cells is None:
            self._bad(record.line, _UNREADABLE_ROW)
        elif len(cells) > len(self._header):
            self._bad(record.line, _too_many_cells(len(cells), len(self._header)))
        else:
            self._parsed += 1


_UNREADABLE_ROW = "the row's quoting cannot be read as one CSV row"


def _too_many_cells(cells: int, columns: int) -> str:
    return f"the row has {cells} cells but the header has {columns} columns"


def _invalid_json_message(e: orjson.JSONDecodeError) -> str:
    return _clip(f"the line is not valid JSON: {e}")


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _not_object_message(value: Any) -> str:
    return f"a record must be a JSON object, got {_type_name(value)}"


def _clip(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE_CHARS else message[: MAX_MESSAGE_CHARS - 1] + "…"


# ---------------------------------------------------------------------------------------------------------
# Planning parts


class _PartCutter:
    """Collects part specs: a part closes at the start of the first record that no longer fits."""

    def __init__(self, part_records: int, start: int, line: int) -> None:
        if part_records < 1:
            raise ValueError("part_records must be >= 1")
        self.part_records = part_records
        self.specs: list[PartSpec] = []
        self.total = 0
        self._start, self._line = start, line  # where the next part begins
        self._first_record = 0
        self._records = 0
        self._open = False

    def add(self, starts: Any, lines: Any) -> None:
        """Count records whose lines start at byte offsets `starts` (1-based physical `lines`), in order."""
        i, n = 0, len(starts)
        while i < n:
            if self._open and self._records == self.part_records:
                self._close(int(starts[i]))
                self._start, self._line = int(starts[i]), int(lines[i])
            if not self._open:
                self._open, self._records, self._first_record = True, 0, self.total
            take = min(self.part_records - self._records, n - i)
            self._records += take
            self.total += take
            i += take

    def finish(self, end: int) -> tuple[list[PartSpec], int]:
        if self._open:
            self._close(end)
        return self.specs, self.total

    def _close(self, end: int) -> None:
        self.specs.append(
            PartSpec(
                index=len(self.specs),
                byte_start=self._start,
                byte_end=end,
                first_line=self._line,
                first_record=self._first_record,
                records=self._records,
            )
        )
        self._open = False


def _record_lines(block: bytes) -> tuple[np.ndarray, np.ndarray, int]:
    """For a block of whole lines: start offsets and 0-based line indexes of its non-blank lines, and its
    line count. Vectorized: no Python work per line."""
    arr = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(arr == 0x0A)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    filled = np.zeros(len(arr) + 1, dtype=np.int64)
    np.cumsum(_NOT_WHITESPACE[arr], out=filled[1:])
    nonblank = np.flatnonzero(filled[ends] - filled[starts] > 0)
    return starts[nonblank], nonblank, len(ends)


def plan_parts(chunks: Iterable[bytes], fmt: str, part_records: int) -> tuple[list[PartSpec], int]:
    """Cut a stored file into byte ranges at record boundaries, up to `part_records` records each.

    Reads the file once with bounded memory. Returns the part specs and the total number of records.
    CSV: the header record is in no part; the first part starts right after it.
    """
    _check_format(fmt)
    splitter = _LineSplitter(MAX_LINE_BYTES)
    if fmt == JSONL:
        return _plan_jsonl(chunks, splitter, part_records)
    return _plan_csv(chunks, splitter, part_records)


def _blocks(chunks: Iterable[bytes], splitter: _LineSplitter) -> Iterator[bytes]:
    """Blocks of whole lines; the last line of the file gets a newline if it lacks one."""
    for chunk in chunks:
        block = splitter.feed(chunk)
        if block:
            yield block
    rest = splitter.finish()
    if rest:
        yield rest + b"\n"


def _plan_jsonl(
    chunks: Iterable[bytes], splitter: _LineSplitter, part_records: int
) -> tuple[list[PartSpec], int]:
    cutter: _PartCutter | None = None
    offset, line = 0, 1
    for block in _blocks(chunks, splitter):
        if cutter is None:
            offset = len(BOM) if splitter.bom else 0
            cutter = _PartCutter(part_records, offset, 1)
        starts, indexes, n_lines = _record_lines(block)
        cutter.add(starts + offset, indexes + line)
        offset += len(block)
        line += n_lines
    if cutter is None:
        return [], 0
    return cutter.finish(splitter.total_bytes)


def _plan_csv(
    chunks: Iterable[bytes], splitter: _LineSplitter, part_records: int
) -> tuple[list[PartSpec], int]:
    assembler = _CsvAssembler(MAX_LINE_BYTES)
    cutter: _PartCutter | None = None
    offset, line = 0, 0
    started = False
    for block in _blocks(chunks, splitter):
        if not started:
            started = True
            offset = len(BOM) if splitter.bom else 0
        lines = block.split(b"\n")
        lines.pop()
        for raw in lines:
            line += 1
            record = assembler.line(raw, line, offset)
            offset += len(raw) + 1
            if record is None:
                continue
            if cutter is None:  # the header: parts start after it
                cutter = _PartCutter(part_records, offset, line + 1)
            else:
                cutter.add((record.start,), (record.line,))
    record = assembler.finish()
    if record is not None and cutter is not None:
        cutter.add((record.start,), (record.line,))
    if cutter is None:
        return [], 0
    return cutter.finish(splitter.total_bytes)


# ---------------------------------------------------------------------------------------------------------
# Parsing a part


@dataclass(frozen=True)
class Record:
    index: int  # 0-based position among the file's records
    line: int  # 1-based physical line where it starts
    id: str
    value: Any


@dataclass(frozen=True)
class RecordError:
    index: int
    line: int
    id: str | None  # None when the record's id cannot be told (the line does not parse, bad id)
    code: str
    message: str


def parse_part(
    data: bytes,
    fmt: str,
    *,
    first_line: int,
    first_record: int,
    fields: tuple[str, ...],
    header: list[str] | None = None,
) -> tuple[list[Record], list[RecordError]]:
    """Parse the bytes of one part into records and per-record errors.

    `fields` are the accepted input fields in order of preference; the first present one gives
    `Record.value`, which must be a string. With no `fields`, the value is the whole record (a dict).
    Every non-blank record yields exactly one Record or one RecordError, with `index` counting from
    `first_record` and `line` the physical line in the whole file.
    """
    _check_format(fmt)
    if first_line == 1:
        data = data.removeprefix(BOM)
    parser = _PartParser(fields, first_record)
    if fmt == JSONL:
        for number, raw in enumerate(data.split(b"\n"), start=first_line):
            if not _is_blank(raw):
                parser.jsonl(raw, number)
        return parser.records, parser.errors
    if header is None:
        raise ValueError("parse_part needs the CSV header (read_header)")
    assembler = _CsvAssembler(MAX_LINE_BYTES)
    for number, raw in enumerate(data.split(b"\n"), start=first_line):
        record = assembler.line(raw, number, 0)
        if record is not None:
            parser.csv(record, header)
    record = assembler.finish()
    if record is not None:
        parser.csv(record, header)
    return parser.records, parser.errors


class _PartParser:
    def __init__(self, fields: tuple[str, ...], first_record: int) -> None:
        self.fields = fields
        self.index = first_record
        self.records: list[Record] = []
        self.errors: list[RecordError] = []

    def _error(self, line: int, id_: str | None, code: str, message: str) -> None:
        # A record whose own id cannot be read is named by its line number, as a record without an id is.
        self.errors.append(
            RecordError(self.index, line, id_ if id_ is not None else str(line), code, _clip(message))
        )
        self.index += 1

    def _record(self, line: int, id_: str, value: Any) -> None:
        self.records.append(Record(self.index, line, id_, value))
        self.index += 1

    def jsonl(self, raw: bytes, line: int) -> None:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            if _decode(raw) is None:
                self._error(line, None, "invalid_encoding", "the line is not valid UTF-8 text")
            else:
                self._error(line, None, "invalid_json", _invalid_json_message(e))
            return
        if not isinstance(obj, dict):
            self._error(line, None, "not_an_object", _not_object_message(obj))
            return
        self._finish(obj, line)

    def csv(self, record: _CsvRecord, header: list[str]) -> None:
        text = _decode(record.data)
        if text is None:
            self._error(record.line, None, "invalid_encoding", "the row is not valid UTF-8 text")
            return
        cells = _split_csv(text)
        if cells is None:
            self._error(record.line, None, "invalid_csv_row", _UNREADABLE_ROW)
            return
        if len(cells) > len(header):
            self._error(record.line, None, "invalid_csv_row", _too_many_cells(len(cells), len(header)))
            return
        # An empty cell is absent: CSV cannot tell an empty string from a missing value.
        row = {name: cell for name, cell in zip(header, cells, strict=False) if cell != ""}
        self._finish(row, record.line)

    def _finish(self, obj: dict[str, Any], line: int) -> None:
        raw_id = obj.get("id")
        if raw_id is None:
            id_ = str(line)
        elif isinstance(raw_id, str) and 0 < len(raw_id) <= MAX_ID_CHARS:
            id_ = raw_id
        elif isinstance(raw_id, int) and not isinstance(raw_id, bool):
            id_ = str(raw_id)
        else:
            if isinstance(raw_id, str):
                what = f"a string of {len(raw_id)} characters" if raw_id else "an empty string"
            else:
                what = _type_name(raw_id)
            self._error(
                line,
                None,
                "invalid_id",
                f"'id' must be an integer or a non-empty string of at most {MAX_ID_CHARS} characters, "
                f"got {what}",
            )
            return
        if not self.fields:
            self._record(line, id_, obj)
            return
        present = [name for name in self.fields if obj.get(name) is not None]
        if not present:
            if any(name in obj for name in self.fields):
                name = next(name for name in self.fields if name in obj)
                self._error(line, id_, "invalid_type", f"field {name!r} must be a string, got null")
            else:
                self._error(line, id_, "missing_field", _missing_message(self.fields))
            return
        name = present[0]
        value = obj[name]
        if not isinstance(value, str):
            got = _type_name(value)
            self._error(line, id_, "invalid_type", f"field {name!r} must be a string, got {got}")
            return
        self._record(line, id_, value)


def _missing_message(fields: tuple[str, ...]) -> str:
    if len(fields) == 1:
        return f"the record has no {fields[0]!r} field"
    return "the record has none of the fields " + ", ".join(repr(f) for f in fields)


# ---------------------------------------------------------------------------------------------------------
# Writing lines


def dumps_line(obj: dict[str, Any]) -> bytes:
    """One JSONL line (numpy arrays and scalars allowed), newline included."""
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE)


def error_line(err: RecordError) -> bytes:
    """The error file's line for a bad record: {"id", "line", "index", "error": {"code", "message"}}, where
    `index` is the record's 0-based position among the file's records (a retry child's lines go there)."""
    return dumps_line(
        {
            "id": err.id,
            "line": err.line,
            "index": err.index,
            "error": {"code": err.code, "message": err.message},
        }
    )
