"""What the classification predictors (text and image) share: a model's label names, and the top_k labels
of each row of scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from inferq.shared.errors import InvalidRequest
from inferq.worker.predictors.base import int_param


def model_labels(model_dir: Path, model_config: Any) -> list[str]:
    """The label names in id order, from the model's `id2label`; a model without any is not a classifier."""
    id2label = model_config.id2label or {}
    if not id2label:
        raise InvalidRequest(f"{model_dir}/config.json has no id2label: not a classification model")
    return [str(id2label[k]) for k in sorted(id2label, key=int)]


def top_labels(scores: torch.Tensor, labels: list[str], params: dict[str, Any]) -> list[dict[str, Any]]:
    """Per row of `scores` ([records, labels]): the best label and its score, and `scores` of the
    `params.top_k` best labels (all of them by default), best first."""
    top_k = min(int_param(params, "top_k") or len(labels), len(labels))
    probs, ids = scores.float().topk(top_k, dim=-1)
    results: list[dict[str, Any]] = []
    for row_probs, row_ids in zip(probs.cpu().tolist(), ids.cpu().tolist(), strict=True):
        named = {labels[i]: p for i, p in zip(row_ids, row_probs, strict=True)}
        results.append({"label": labels[row_ids[0]], "score": row_probs[0], "scores": named})
    return results
