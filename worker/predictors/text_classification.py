"""Text classification: a sequence-classification head, softmax over its labels, the top_k of them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification

from inferq.shared.errors import InvalidRequest
from inferq.shared.tasks import TEXT_CLASSIFICATION
from inferq.worker import explain
from inferq.worker.predictors.base import TextPredictor
from inferq.worker.predictors.labels import model_labels, top_labels

log = logging.getLogger(__name__)


class TextClassificationPredictor(TextPredictor):
    task = TEXT_CLASSIFICATION
    explain_method = explain.TEXT_METHOD

    def __init__(self, model_dir: Path, device: torch.device, config: dict[str, Any]) -> None:
        super().__init__(model_dir, device, config)
        self.model = self._load_model(AutoModelForSequenceClassification, model_dir, device)
        self.default_max_length = self.model_max_positions
        self.labels = model_labels(model_dir, self.model.config)
        if len(self.labels) != self.model.config.num_labels:
            raise InvalidRequest(
                f"config.json names {len(self.labels)} labels "
                f"but the model has {self.model.config.num_labels}"
            )
        # Multi-label models score each label on its own; single-label ones share one distribution.
        self.multi_label = self.model.config.problem_type == "multi_label_classification"

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.model(**batch).logits.float()
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)

    def postprocess(self, output: torch.Tensor, params: dict[str, Any]) -> list[dict[str, Any]]:
        return top_labels(output, self.labels, params)

    def explain(self, batch: dict[str, torch.Tensor], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Gradient x input per word-piece token for each record's predicted label (`worker.explain`)."""
        chosen = [str(r["label"]) for r in results]
        explanations = explain.text_explanations(self.model, self.tokenizer, batch, self.labels, chosen)
        return [{"explanation": e} for e in explanations]
