"""Records read whole, for predict jobs on images and for evaluate jobs.

- image-classification: `image` (base64 PNG/JPEG) or `image_key` (the tenant's storage area) is decoded
  while the part is parsed, so an undecodable image is a per-record error like a bad JSON line.
- evaluate: the record's `label` travels with it and comes out as `expected` next to the prediction; the
  finalizer scores the output file (`worker.evaluation`).
"""

from __future__ import annotations

from typing import Any

from shared.records import Record, RecordError, dumps_line, error_line, parse_part
from shared.storage import Storage
from worker.formatters import Formatter, Inputs
from worker.record_values import apply_readers, value_reader


class TaskFormatter(Formatter):
    def __init__(self, task: str, tenant_id: str, storage: Storage, labelled: bool) -> None:
        self.read_value = value_reader(task, storage, tenant_id)
        self.labelled = labelled

    def parse(
        self, data: bytes, fmt: str, *, first_line: int, first_record: int, header: list[str] | None
    ) -> tuple[list[Record], list[RecordError]]:
        records, errors = parse_part(
            data, fmt, first_line=first_line, first_record=first_record, fields=(), header=header
        )
        return apply_readers(records, errors, self.read_value, self.labelled)

    def inputs(self, records: list[Record]) -> Inputs:
        if self.labelled:
            return Inputs([r.value[0] for r in records], lambda n: n)
        return Inputs([r.value for r in records], lambda n: n)

    def output_lines(
        self, records: list[Record], outputs: list[dict[str, Any]], tokens: list[int]
    ) -> list[bytes]:
        if self.labelled:
            return [
                dumps_line({"id": rec.id, **out, "expected": rec.value[1]})
                for rec, out in zip(records, outputs, strict=True)
            ]
        return [dumps_line({"id": rec.id, **out}) for rec, out in zip(records, outputs, strict=True)]

    def error_line(self, err: RecordError) -> bytes:
        return error_line(err)
