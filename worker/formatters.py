"""What differs between job kinds in running a part: how its bytes become records, what the predictor
reads of them, and how results and errors become lines. The runner's loop is the same for all.

- ``predict``: inferq records (`shared.records`), one value per record, `{"id", …}` output lines.
- ``batch``: OpenAI batch request lines (`shared.batch_lines`); a line may carry several inputs, all
  flattened into one predictor run, and answers with one OpenAI-shaped line.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from inferq.shared import batch_lines, registry
from inferq.shared.db import session_scope
from inferq.shared.errors import InferqError, NotFound
from inferq.shared.job_types import JobType
from inferq.shared.models import Job
from inferq.shared.openai_embeddings import EmbeddingsRequest
from inferq.shared.records import JSONL, Record, RecordError, dumps_line, error_line, parse_part
from inferq.shared.settings import Settings
from inferq.shared.tasks import EMBEDDING, IMAGE_CLASSIFICATION, input_fields


@dataclass(frozen=True)
class Inputs:
    values: list[Any]  # what the predictor reads, in order
    records_done: Callable[[int], int]  # how many records are finished once this many values are


class Formatter(ABC):
    @abstractmethod
    def parse(
        self, data: bytes, fmt: str, *, first_line: int, first_record: int, header: list[str] | None
    ) -> tuple[list[Record], list[RecordError]]: ...

    @abstractmethod
    def inputs(self, records: list[Record]) -> Inputs: ...

    @abstractmethod
    def output_lines(
        self, records: list[Record], outputs: list[dict[str, Any]], tokens: list[int]
    ) -> list[bytes]: ...

    @abstractmethod
    def error_line(self, err: RecordError) -> bytes: ...

    def failed_late(
        self, records: list[Record], outputs: list[dict[str, Any]], tokens: list[int]
    ) -> tuple[list[Record], list[dict[str, Any]], list[int], list[RecordError]]:
        """Split off the records whose input failed only while its batch was built (an image whose
        pixels would not decode): they become per-record errors. Most formats have none."""
        return records, outputs, tokens, []


class PredictFormatter(Formatter):
    def __init__(self, task: str) -> None:
        self.task = task

    def parse(
        self, data: bytes, fmt: str, *, first_line: int, first_record: int, header: list[str] | None
    ) -> tuple[list[Record], list[RecordError]]:
        return parse_part(
            data,
            fmt,
            first_line=first_line,
            first_record=first_record,
            fields=input_fields(self.task),
            header=header,
        )

    def inputs(self, records: list[Record]) -> Inputs:
        return Inputs([r.value for r in records], lambda n: n)

    def output_lines(
        self, records: list[Record], outputs: list[dict[str, Any]], tokens: list[int]
    ) -> list[bytes]:
        return [dumps_line({"id": rec.id, **out}) for rec, out in zip(records, outputs, strict=True)]

    def error_line(self, err: RecordError) -> bytes:
        return error_line(err)


class BatchFormatter(Formatter):
    """An OpenAI embeddings batch: lines must ask for the model the batch resolved at submit."""

    def __init__(
        self,
        job_id: str,
        tenant_id: str,
        model: registry.ResolvedModel,
        info: dict[str, Any],
        settings: Settings,
    ) -> None:
        self.job_id = job_id
        self.tenant_id = tenant_id
        self.model = model
        self.endpoint = str(info.get("endpoint") or batch_lines.ENDPOINTS[0])
        self.requested = str(info.get("model") or model.name)
        self.dimensions = info.get("dimensions")
        self.settings = settings
        self._verdicts: dict[str, tuple[str, str] | None] = {
            name: None for name in [*info.get("aliases", []), model.ref]
        }

    def check_model(self, name: str) -> tuple[str, str] | None:
        """None when `name` resolves to the batch's model; else why not. Each name is looked up once."""
        if name not in self._verdicts:
            self._verdicts[name] = self._lookup(name)
        return self._verdicts[name]

    def _lookup(self, name: str) -> tuple[str, str] | None:
        try:
            with session_scope(self.settings) as session:
                found = registry.resolve(session, self.tenant_id, name, EMBEDDING)
        except NotFound:
            return "model_not_found", f"model {name!r} does not exist"
        except InferqError as e:
            return "invalid_model", e.message
        if found.ref == self.model.ref:
            return None
        return (
            "model_mismatch",
            f"this batch runs {self.requested} ({self.model.ref}), the model of its first request; "
            f"a batch runs one model, so {name!r} cannot be used here",
        )

    def parse(
        self, data: bytes, fmt: str, *, first_line: int, first_record: int, header: list[str] | None
    ) -> tuple[list[Record], list[RecordError]]:
        if fmt != JSONL:
            raise ValueError(f"batch input must be JSONL, not {fmt}")
        return batch_lines.parse_batch_part(
            data,
            first_line=first_line,
            first_record=first_record,
            endpoint=self.endpoint,
            check_model=self.check_model,
            model_dimensions=self.dimensions if isinstance(self.dimensions, int) else None,
            model_ref=self.model.ref,
        )

    def inputs(self, records: list[Record]) -> Inputs:
        values = [text for r in records for text in _request(r).inputs]
        n_records, n_values = len(records), max(1, len(values))
        # Batches run longest first, across lines: count finished lines in proportion, never ahead.
        return Inputs(values, lambda done: done * n_records // n_values)

    def output_lines(
        self, records: list[Record], outputs: list[dict[str, Any]], tokens: list[int]
    ) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        for record in records:
            end = start + len(_request(record).inputs)
            vectors = [out["embedding"] for out in outputs[start:end]]
            lines.append(batch_lines.output_line(self.job_id, record, vectors, tokens[start:end]))
            start = end
        if start != len(outputs):
            raise RuntimeError(f"{len(outputs)} embeddings for {start} inputs")
        return lines

    def error_line(self, err: RecordError) -> bytes:
        return batch_lines.error_line(self.job_id, err)


def _request(record: Record) -> EmbeddingsRequest:
    value = record.value
    assert isinstance(value, EmbeddingsRequest)
    return value


def formatter_for(job: Job, model: registry.ResolvedModel, settings: Settings) -> Formatter:
    if job.type is JobType.EVALUATE or job.task == IMAGE_CLASSIFICATION:
        from inferq.shared.storage import get_storage
        from inferq.worker.task_formatter import TaskFormatter

        return TaskFormatter(
            job.task,
            job.tenant_id,
            get_storage(settings),
            labelled=job.type is JobType.EVALUATE,
            max_pixels=settings.image_max_pixels,
        )
    if job.type == batch_lines.JOB_TYPE:
        info = (job.params or {}).get("openai_batch") or {}
        return BatchFormatter(job.id, job.tenant_id, model, dict(info), settings)
    return PredictFormatter(job.task)
