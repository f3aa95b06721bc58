"""One predictor class per task; `load_predictor` picks and loads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from inferq.shared.errors import InvalidRequest
from inferq.worker import nets
from inferq.worker.predictors.base import Predictor, Prepared
from inferq.worker.predictors.embedding import EmbeddingPredictor
from inferq.worker.predictors.image_classification import ImageClassificationPredictor
from inferq.worker.predictors.text_classification import TextClassificationPredictor

PREDICTORS: dict[str, type[Predictor]] = {
    EmbeddingPredictor.task: EmbeddingPredictor,
    TextClassificationPredictor.task: TextClassificationPredictor,
    ImageClassificationPredictor.task: ImageClassificationPredictor,
}


def use_planless_attention() -> None:
    """Take cuDNN out of torch's attention backends (flash / memory-efficient attention serve instead).

    With a padding mask, torch 2.11 sends attention to cuDNN first on recent GPUs, and cuDNN builds an
    execution plan for every new (batch, length) shape. Length-sorted batches are nearly all new shapes:
    on the H200, bf16 MiniLM ran at 7.3k records/s with the GPU 4-10% busy, against 82.9k for the same
    batches once their shapes had been seen (benchmarks/RESULTS.md, GPU run). Process-wide, and harmless
    where cuDNN attention is not used.
    """
    torch.backends.cuda.enable_cudnn_sdp(False)


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
    if device.type == "cuda":
        use_planless_attention()
    return cls(model_dir, device, config)


__all__ = ["PREDICTORS", "Predictor", "Prepared", "load_predictor", "use_planless_attention"]
