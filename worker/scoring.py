"""Classification metrics (pure): accuracy, macro-F1, per-class precision and recall, confusion matrix.

Fractions in 0..1. A class that is never predicted has precision 0; one that never occurs has recall 0
(and is left out of macro averages only when it neither occurs nor is predicted).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def classification_metrics(
    expected: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """Metrics of `predicted` against `expected`; `labels` orders the confusion matrix (rows: expected)."""
    if len(expected) != len(predicted):
        raise ValueError(f"{len(expected)} expected labels but {len(predicted)} predictions")
    order = list(labels)
    for label in [*expected, *predicted]:
        if label not in order:
            order.append(label)
    index = {label: i for i, label in enumerate(order)}
    matrix = [[0] * len(order) for _ in order]
    for e, p in zip(expected, predicted, strict=True):
        matrix[index[e]][index[p]] += 1
    per_class: dict[str, dict[str, float | int]] = {}
    f1s: list[float] = []
    for label, i in index.items():
        tp = matrix[i][i]
        support = sum(matrix[i])
        predicted_n = sum(row[i] for row in matrix)
        precision = tp / predicted_n if predicted_n else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {
            "precision": round(precision, 6),
            "recall": round(recall, 6),
            "f1": round(f1, 6),
            "support": support,
        }
        if support or predicted_n:
            f1s.append(f1)
    total = len(expected)
    correct = sum(matrix[i][i] for i in range(len(order)))
    return {
        "accuracy": round(correct / total, 6) if total else 0.0,
        "macro_f1": round(sum(f1s) / len(f1s), 6) if f1s else 0.0,
        "records": total,
        "per_class": per_class,
        "confusion_matrix": {"labels": order, "matrix": matrix},
    }
