"""Records read whole, for predict jobs on images and for evaluate jobs.

- image-classification: `image` (base64 PNG/JPEG) or `image_key` (the tenant's storage area) is checked
  from its header while the part is parsed, so a bad image is a per-record error like a bad JSON line; its
  pixels are decoded when its batch is built (`worker.images`), and an image that fails only then is a
  per-record error too (`failed_late`).
- evaluate: the record's `label` travels with it and comes out as `expected` next to the prediction; the
  finalizer scores the output file (`worker.evaluation`).
"""

from __future__ import annotations

from typing import Any

from inferq.shared.records import Record, RecordError, dumps_line, error_line, parse_part
from inferq.shared.storage import Storage
from inferq.worker.formatters import Formatter, Inputs
from inferq.worker.images import DEFAULT_MAX_PIXELS, ImageSource
from inferq.worker.record_values import apply_readers, value_reader


class TaskFormatter(Formatter):
    def __init__(
        self,
        task: str,
        tenant_id: str,
        storage: Storage,
        labelled: bool,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.read_value = value_reader(task, storage, tenant_id, max_pixels)
        self.labelled = labelled

    def parse(
        self, data: bytes, fmt: str, *, first_line: int, first_record: int, header: list[str] | None
    ) -> tuple[list[Record], list[RecordError]]:
        records, errors = parse_part(
            data, fmt, first_line=first_line, first_record=first_record, fields=(), header=header
        )
        return apply_readers(records, errors, self.read_value, self.labelled)

    def _input(self, record: Record) -> Any:
        return record.value[0] if self.labelled else record.value

    def inputs(self, records: list[Record]) -> Inputs:
        values = [self._input(r) for r in records]
        sources = [v for v in values if isinstance(v, ImageSource)]

        def records_done(n: int) -> int:
            """Values done less the images that failed to decode (errors, not completed records): the
            progress a heartbeat publishes never runs ahead of the part's final `completed`."""
            return max(0, n - sum(1 for s in sources if s.error is not None))

        return Inputs(values, records_done)

    def failed_late(
        self, records: list[Record], outputs: list[dict[str, Any]], tokens: list[int]
    ) -> tuple[list[Record], list[dict[str, Any]], list[int], list[RecordError]]:
        kept: tuple[list[Record], list[dict[str, Any]], list[int]] = ([], [], [])
        errors: list[RecordError] = []
        for record, output, n in zip(records, outputs, tokens, strict=True):
            value = self._input(record)
            if isinstance(value, ImageSource) and value.error is not None:
                errors.append(
                    RecordError(record.index, record.line, record.id, value.error.code, value.error.message)
                )
                continue
            kept[0].append(record)
            kept[1].append(output)
            kept[2].append(n)
        return *kept, errors

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
