"""The seam between the batching loop and a task: load, preprocess, collate, forward, postprocess.

The loop (`worker.inference.run_predictions`) knows nothing about tasks; a new task is one new class.
Models load from a local Hugging Face folder: safetensors weights only, never remote code.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from inferq.shared.errors import InvalidRequest
from inferq.shared.model_limits import TokenLimits, position_limit
from inferq.worker.padding import pad_token_ids

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """What preprocess made of a list of inputs: per-item features (unpadded) and lengths in tokens."""

    lengths: list[int]
    features: dict[str, list[Any]] = field(default_factory=dict)


class Predictor(ABC):
    task: ClassVar[str]

    def __init__(self, model_dir: Path, device: torch.device, config: dict[str, Any]) -> None:
        self.model_dir = model_dir
        self.device = device
        self.config = dict(config)

    @abstractmethod
    def preprocess(self, values: list[Any], params: dict[str, Any]) -> Prepared: ...

    @abstractmethod
    def collate(self, prepared: Prepared, indices: list[int]) -> dict[str, torch.Tensor]: ...

    @abstractmethod
    def forward(self, batch: dict[str, torch.Tensor]) -> Any: ...

    @abstractmethod
    def postprocess(self, output: Any, params: dict[str, Any]) -> list[dict[str, Any]]: ...

    # The method name `explain` reports in stats and output lines; None: this task cannot explain.
    explain_method: ClassVar[str | None] = None

    def explain(self, batch: dict[str, torch.Tensor], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Fields to add to each of `results` (this batch's predictions) explaining its chosen label.

        Called by `worker.explain.add_explanations` with autograd enabled and autocast off, only when
        the job asks for `params.explain`.
        """
        raise InvalidRequest(f"params.explain is not available for {self.task} jobs", field="params.explain")


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Move a collated batch to `device`. To a GPU the tensors go through pinned (page-locked) host memory
    and copy asynchronously on the current stream: the copy queues behind the kernels already launched, so
    the CPU goes on collating the next batch while the GPU computes (`worker.inference.run_predictions`
    keeps one batch in flight). Torch's caching host allocator keeps the pinned block until its copy ends."""
    if device.type != "cuda":
        return {k: v.to(device) for k, v in batch.items()}
    return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}


def read_json(path: Path) -> dict[str, Any] | None:
    """A small JSON config file of a model folder, or None when absent."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
    except ValueError as e:
        raise InvalidRequest(f"{path.name} in the model folder is not valid JSON: {e}") from e
    return data if isinstance(data, dict) else None


def int_param(params: dict[str, Any], name: str, minimum: int = 1) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidRequest(
            f"params.{name} must be an integer >= {minimum}, got {value!r}", field=f"params.{name}"
        )
    return value


class TextPredictor(Predictor):
    """Shared text steps: a Hugging Face tokenizer, truncation to max_length, padding per batch."""

    # Set by subclasses once the model is loaded: the most positions the model can take.
    model_max_positions: int = 512
    default_max_length: int = 512

    def __init__(self, model_dir: Path, device: torch.device, config: dict[str, Any]) -> None:
        super().__init__(model_dir, device, config)
        self.tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(
            str(model_dir), local_files_only=True, trust_remote_code=False
        )
        self.pad_id = int(self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0)
        self.uses_token_types = "token_type_ids" in self.tokenizer.model_input_names

    def _load_model(self, auto_class: Any, model_dir: Path, device: torch.device) -> Any:
        """Safetensors weights only, never remote code; float32 weights (autocast picks the compute dtype)."""
        model = auto_class.from_pretrained(
            str(model_dir),
            use_safetensors=True,
            trust_remote_code=False,
            local_files_only=True,
            dtype=torch.float32,
        )
        model.to(device).eval()
        self.model_max_positions = self._position_limit(model.config)
        return model

    def _position_limit(self, model_config: Any) -> int:
        return position_limit(
            getattr(model_config, "max_position_embeddings", None),
            getattr(self.tokenizer, "model_max_length", None),
        )

    def max_length(self, params: dict[str, Any]) -> int:
        """The `max_length` param, else the model's own setting; clamped to what the model can take (the API
        refuses a value outside it, but a job submitted before it did must not crash its part)."""
        asked = int_param(params, "max_length")
        if asked is None:
            asked = int(self.config.get("max_length") or self.default_max_length)
        limits = TokenLimits(self.tokenizer.num_special_tokens_to_add(pair=False), self.model_max_positions)
        return limits.clamp(asked)

    def preprocess(self, values: list[Any], params: dict[str, Any]) -> Prepared:
        if not values:
            return Prepared(lengths=[], features={"input_ids": []})
        encoded = self.tokenizer(
            [str(v) for v in values],
            truncation=True,
            max_length=self.max_length(params),
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        ids: list[list[int]] = encoded["input_ids"]
        return Prepared(lengths=[len(x) for x in ids], features={"input_ids": ids})

    def collate(self, prepared: Prepared, indices: list[int]) -> dict[str, torch.Tensor]:
        rows = [prepared.features["input_ids"][i] for i in indices]
        return to_device(pad_token_ids(rows, self.pad_id, self.uses_token_types), self.device)
