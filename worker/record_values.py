"""From a parsed record (a dict) to what a predictor or trainer reads: text, a decoded image, a label.

A record that cannot serve becomes a per-record error with a stable code (`ValueProblem`), the same
codes as `shared.records` plus the image ones of `worker.images`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from inferq.shared.records import JSONL, Record, RecordError, parse_part, read_header
from inferq.shared.storage import Storage
from inferq.shared.tasks import IMAGE_CLASSIFICATION
from inferq.worker.images import DEFAULT_MAX_PIXELS, ImageError, ImageSource, base64_source, image_key_source

LABEL = "label"
HEADER_PROBE_BYTES = 1024 * 1024


class ValueProblem(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _type_name(value: Any) -> str:
    return (
        "null" if value is None else type(value).__name__.replace("str", "string").replace("dict", "object")
    )


def read_text(obj: dict[str, Any]) -> str:
    value = obj.get("text")
    if "text" not in obj:
        raise ValueProblem("missing_field", "the record has no 'text' field")
    if not isinstance(value, str):
        raise ValueProblem("invalid_type", f"field 'text' must be a string, got {_type_name(value)}")
    return value


def image_reader(
    storage: Storage | None, tenant_id: str, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Callable[[dict[str, Any]], Any]:
    """Reads `image` (base64 PNG/JPEG) or else `image_key` (in the tenant's storage area) as an
    `ImageSource`: checked from its header now, decoded when its batch is built (`worker.images`)."""

    def read(obj: dict[str, Any]) -> Any:
        try:
            if obj.get("image") is not None:
                value = obj["image"]
                if not isinstance(value, str):
                    raise ValueProblem(
                        "invalid_type", f"field 'image' must be a base64 string, got {_type_name(value)}"
                    )
                return base64_source(value, max_pixels)
            if obj.get("image_key") is not None:
                key = obj["image_key"]
                if not isinstance(key, str):
                    raise ValueProblem(
                        "invalid_type", f"field 'image_key' must be a string, got {_type_name(key)}"
                    )
                if storage is None:
                    raise ValueProblem("invalid_image_key", "image_key cannot be read here")
                return image_key_source(storage, tenant_id, key, max_pixels)
        except ImageError as e:
            raise ValueProblem(e.code, e.message) from e
        raise ValueProblem("missing_field", "the record has none of the fields 'image', 'image_key'")

    return read


def value_reader(
    task: str, storage: Storage | None, tenant_id: str, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Callable[[dict[str, Any]], Any]:
    return image_reader(storage, tenant_id, max_pixels) if task == IMAGE_CLASSIFICATION else read_text


def read_label(obj: dict[str, Any]) -> str:
    if LABEL not in obj or obj[LABEL] is None:
        raise ValueProblem("missing_field", "the record has no 'label' field")
    label = obj[LABEL]
    if isinstance(label, bool) or not isinstance(label, (str, int)):
        raise ValueProblem("invalid_type", f"field 'label' must be a string, got {_type_name(label)}")
    text = str(label).strip()
    if not text or len(text) > 200:
        raise ValueProblem("invalid_label", "field 'label' must be 1 to 200 characters")
    return text


@dataclass
class LabelledRecords:
    records: list[Record]  # value: (input, label)
    errors: list[RecordError]

    @property
    def values(self) -> list[Any]:
        return [r.value[0] for r in self.records]

    @property
    def labels(self) -> list[str]:
        return [str(r.value[1]) for r in self.records]


def apply_readers(
    records: list[Record],
    errors: list[RecordError],
    read_value: Callable[[dict[str, Any]], Any],
    labelled: bool,
) -> tuple[list[Record], list[RecordError]]:
    """Whole-record `Record`s → records whose value is the input (or `(input, label)` when labelled)."""
    out: list[Record] = []
    bad = list(errors)
    for record in records:
        obj = record.value
        try:
            value = read_value(obj)
            out.append(
                Record(record.index, record.line, record.id, (value, read_label(obj)) if labelled else value)
            )
        except ValueProblem as e:
            bad.append(RecordError(record.index, record.line, record.id, e.code, e.message))
    bad.sort(key=lambda e: e.index)
    return out, bad


def _decoded(read_value: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    """`read_value`, and an image it reads is decoded once (shrunk at once, its pixels dropped) so that a
    training file's undecodable image is a bad record up front, not a failed training job."""

    def read(obj: dict[str, Any]) -> Any:
        value = read_value(obj)
        if isinstance(value, ImageSource):
            try:
                value.decode((1, 1))
            except ImageError as e:
                raise ValueProblem(e.code, e.message) from e
        return value

    return read


def read_labelled_file(
    storage: Storage,
    key: str,
    fmt: str,
    task: str,
    tenant_id: str,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> LabelledRecords:
    """Every record of a labelled file, read whole (training files are small enough to hold; images stay
    encoded until the trainer encodes them at the model's input size)."""
    header = None
    if fmt != JSONL:
        header = read_header(b"".join(storage.iter_bytes(key, 0, HEADER_PROBE_BYTES)))
    data = storage.read_bytes(key)
    records, errors = parse_part(data, fmt, first_line=1, first_record=0, fields=(), header=header)
    read_value = _decoded(value_reader(task, storage, tenant_id, max_pixels))
    good, bad = apply_readers(records, errors, read_value, labelled=True)
    return LabelledRecords(good, bad)
