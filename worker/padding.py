"""One padded batch of token ids: what a text predictor (`worker.predictors.base`) and a text trainable
(`worker.trainables`) both hand their model."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pad_token_ids(rows: Sequence[Sequence[int]], pad_id: int, token_types: bool) -> dict[str, torch.Tensor]:
    """`rows` padded on the right with `pad_id` to the longest: `input_ids`, an `attention_mask` of 1 over
    each row's own tokens, and all-zero `token_type_ids` where the model reads them. On the CPU."""
    width = max((len(r) for r in rows), default=0)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for n, row in enumerate(rows):
        input_ids[n, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[n, : len(row)] = 1
    batch = {"input_ids": input_ids, "attention_mask": mask}
    if token_types:
        batch["token_type_ids"] = torch.zeros_like(input_ids)
    return batch
