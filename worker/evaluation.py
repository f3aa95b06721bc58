"""Evaluate jobs: score the joined output file (a prediction and the `expected` label per record)."""

from __future__ import annotations

from typing import Any

import orjson

from inferq.shared.storage import Storage
from inferq.worker.scoring import classification_metrics


def _lines(storage: Storage, key: str) -> Any:
    pending = b""
    for chunk in storage.iter_bytes(key):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line.strip():
                yield orjson.loads(line)
    if pending.strip():
        yield orjson.loads(pending)


def evaluation_metrics(storage: Storage, output_key: str, labels: list[str] | None) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall and the confusion matrix of an evaluate job."""
    expected: list[str] = []
    predicted: list[str] = []
    for row in _lines(storage, output_key):
        expected.append(str(row["expected"]))
        predicted.append(str(row["label"]))
    return classification_metrics(expected, predicted, labels or sorted(set(expected)))
