"""One predictor class per task; `load_predictor` picks and loads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from shared.errors import InvalidRequest
from worker import nets
from worker.predictors.base import Predictor, Prepared
from worker.predictors.embedding import EmbeddingPredictor
from worker.predictors.image_classification import ImageClassificationPredictor
from worker.predictors.text_classification import TextClassificationPredictor

PREDICTORS: dict[str, type[Predictor]] = {
    EmbeddingPredictor.task: EmbeddingPredictor,
    TextClassificationPredictor.task: TextClassificationPredictor,
    ImageClassificationPredictor.task: ImageClassificationPredictor,
}


def load_predictor(task: str, model_dir: Path, device: torch.device, config: dict[str, Any]) -> Predictor:
    """Load the model folder for `task` on `device` (safetensors weights only, no remote code)."""
    cls = PREDICTORS.get(task)
    if cls is None:
        raise InvalidRequest(
            f"no predictor for task {task!r}; this worker runs {', '.join(sorted(PREDICTORS))}",
            field="task",
            code="unsupported_task",
        )
    nets.register()  # the project's own architectures load through the Auto classes, without remote code
    return cls(model_dir, device, config)


__all__ = ["PREDICTORS", "Predictor", "Prepared", "load_predictor"]
