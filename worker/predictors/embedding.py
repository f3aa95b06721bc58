"""Sentence embeddings: a transformer encoder, pooled over its tokens, optionally L2-normalized.

Reads the sentence-transformers files of the folder when present (`sentence_bert_config.json` for the
maximum sequence length, `1_Pooling/config.json` for the pooling mode) so the vectors match what
sentence-transformers computes for the same model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModel

from inferq.shared.errors import InvalidRequest
from inferq.shared.tasks import EMBEDDING
from inferq.worker.predictors.base import TextPredictor, read_json

log = logging.getLogger(__name__)

POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len")
_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
    "pooling_mode_mean_tokens": "mean",
}


def pooling_mode(model_dir: Path, config: dict[str, Any]) -> str:
    """The pooling: the model version's config, else the folder's 1_Pooling/config.json, else mean."""
    mode = config.get("pooling")
    if mode is None:
        pooling = read_json(model_dir / "1_Pooling" / "config.json") or {}
        chosen = [name for key, name in _POOLING_KEYS.items() if pooling.get(key)]
        if len(chosen) > 1:
            raise InvalidRequest(f"pooling combines {', '.join(chosen)}: only one pooling mode is supported")
        mode = chosen[0] if chosen else "mean"
    if mode not in POOLING_MODES:
        raise InvalidRequest(f"unknown pooling {mode!r}; expected one of {', '.join(POOLING_MODES)}")
    return str(mode)


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """[batch, tokens, dim] token vectors -> [batch, dim], ignoring padded positions."""
    if mode == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "max":
        return hidden.masked_fill(weights == 0, -1e9).max(dim=1).values
    summed = (hidden * weights).sum(dim=1)
    counts = weights.sum(dim=1).clamp(min=1e-9)
    if mode == "mean_sqrt_len":
        return summed / counts.sqrt()
    return summed / counts


class EmbeddingPredictor(TextPredictor):
    task = EMBEDDING

    def __init__(self, model_dir: Path, device: torch.device, config: dict[str, Any]) -> None:
        super().__init__(model_dir, device, config)
        self.model = self._load_model(AutoModel, model_dir, device)
        st_config = read_json(model_dir / "sentence_bert_config.json") or {}
        self.default_max_length = int(st_config.get("max_seq_length") or self.model_max_positions)
        self.pooling = pooling_mode(model_dir, config)
        log.info(
            "embedding model from %s: pooling %s, max_length %d", model_dir, self.pooling, self.max_length({})
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.model(**batch).last_hidden_state.float()
        return pool(hidden, batch["attention_mask"], self.pooling)

    def postprocess(self, output: torch.Tensor, params: dict[str, Any]) -> list[dict[str, Any]]:
        normalize = params.get("normalize", self.config.get("normalize", True))
        if not isinstance(normalize, bool):
            raise InvalidRequest(
                f"params.normalize must be true or false, got {normalize!r}", field="params.normalize"
            )
        vectors = output.float()
        if normalize:
            vectors = F.normalize(vectors, p=2, dim=1)
        # One float32 numpy row per item, never Python float lists: output lines are written by orjson
        # straight from the array (`shared.records.dumps_line`), each value the shortest decimal that
        # reads back as the same float32.
        array = np.ascontiguousarray(vectors.cpu().numpy(), dtype=np.float32)
        return [{"embedding": row} for row in array]
