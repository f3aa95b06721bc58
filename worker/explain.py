"""Explanations for classification predictions (`params.explain`), computed on the worker, batched.

The batching loop (`worker.inference`) predicts a batch as usual, under `torch.inference_mode()` and
autocast; when the job asks for explanations it then hands the same records, collated into the same
padded batch, to `add_explanations`, which enables autograd for that one pass and runs it in float32
(whatever `params.precision` the prediction used), so attributions never depend on bf16 rounding. The
predictor's `explain` step calls the functions here:

- text: gradient x input on the output of the model's input-embedding layer, with respect to the logit of
  the predicted label, summed over the embedding dimension: one number per word-piece token. Special
  tokens ([CLS], [SEP], padding…) are dropped; [UNK] stands for real text and is kept.
- images: the gradient of the predicted label's logit with respect to the input pixels (the processed
  image the model saw), its absolute value maxed over channels, scaled to 0..255 per image, shrunk to at
  most 64x64 and encoded as a grayscale PNG.

Each record's gradient depends only on its own row (the models run in eval mode: no batch statistics), so
one backward pass over the summed target logits gives every row's gradient at once.
"""

from __future__ import annotations

import base64
import io
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from inferq.worker.explain_events import IMAGE_METHOD, TEXT_METHOD

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from inferq.worker.predictors.base import Predictor, Prepared

log = logging.getLogger(__name__)

SALIENCY_MAX_SIDE = 64
SIGNIFICANT_DIGITS = 6

__all__ = [
    "IMAGE_METHOD",
    "SALIENCY_MAX_SIDE",
    "TEXT_METHOD",
    "add_explanations",
    "input_embedding_module",
    "pixel_saliency",
    "saliency_explanations",
    "saliency_png",
    "text_explanations",
    "token_attributions",
    "wants_explanations",
]


def wants_explanations(params: dict[str, Any]) -> bool:
    return params.get("explain") is True


def add_explanations(
    predictor: Predictor, prepared: Prepared, indices: list[int], results: list[dict[str, Any]]
) -> float:
    """Add the predictor's explanation fields to `results` (one per index, already predicted); returns
    the seconds it took. Collated again outside inference mode: autograd cannot use inference tensors."""
    started = time.perf_counter()
    with torch.inference_mode(False), torch.enable_grad(), _no_autocast(predictor.device):
        batch = predictor.collate(prepared, indices)
        extras = predictor.explain(batch, results)
    if len(extras) != len(results):
        raise RuntimeError(
            f"{type(predictor).__name__}.explain returned {len(extras)} explanations for {len(results)} items"
        )
    for result, extra in zip(results, extras, strict=True):
        result.update(extra)
    return time.perf_counter() - started


@contextmanager
def _no_autocast(device: torch.device) -> Iterator[None]:
    if device.type in ("cuda", "cpu"):
        with torch.autocast(device_type=device.type, enabled=False):
            yield
    else:
        yield


def _significant(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def _target_logits(logits: torch.Tensor, targets: Sequence[int]) -> torch.Tensor:
    index = torch.tensor(list(targets), dtype=torch.long, device=logits.device)
    return logits.float().gather(1, index[:, None]).squeeze(1)


# ---- text --------------------------------------------------------------------------------------------


def input_embedding_module(model: nn.Module) -> nn.Embedding:
    """The embedding layer that maps the model's input ids to vectors.

    `get_input_embeddings()` where the model defines it (Hugging Face models); otherwise the first
    `nn.Embedding` with one row per vocabulary entry (the project's TextCNN).
    """
    found: nn.Module | None = None
    getter = getattr(model, "get_input_embeddings", None)
    if callable(getter):
        try:
            found = getter()
        except (NotImplementedError, AttributeError):
            found = None
    if isinstance(found, nn.Embedding):
        return found
    vocab_size = int(getattr(getattr(model, "config", None), "vocab_size", 0) or 0)
    for module in model.modules():
        if isinstance(module, nn.Embedding) and (not vocab_size or module.num_embeddings == vocab_size):
            return module
    raise RuntimeError(f"{type(model).__name__} has no input embedding layer to attribute to")


def token_attributions(
    model: nn.Module, batch: dict[str, torch.Tensor], targets: Sequence[int]
) -> torch.Tensor:
    """Gradient x input per token position, [batch, tokens] float32, for each row's target label.

    The embedding layer's output is swapped for a detached leaf that requires grad, so the backward pass
    reaches only as far as the embeddings (no weight gradients are computed or accumulated).
    """
    layer = input_embedding_module(model)
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _args: Any, output: torch.Tensor) -> torch.Tensor:
        leaf = output.detach().float().requires_grad_(True)
        captured.append(leaf)
        return leaf

    handle = layer.register_forward_hook(hook)
    try:
        logits = model(**batch).logits
    finally:
        handle.remove()
    if len(captured) != 1:
        raise RuntimeError(f"the input embedding layer ran {len(captured)} times in one forward pass")
    (embeddings,) = captured
    (gradient,) = torch.autograd.grad(_target_logits(logits, targets).sum(), embeddings)
    return (gradient * embeddings).sum(dim=-1).detach().float()


def _dropped_ids(tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """Special tokens that carry no text of the record ([UNK] does, so it stays)."""
    dropped = {int(i) for i in tokenizer.all_special_ids}
    if tokenizer.unk_token_id is not None:
        dropped.discard(int(tokenizer.unk_token_id))
    return dropped


def text_explanations(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    batch: dict[str, torch.Tensor],
    labels: Sequence[str],
    chosen: Sequence[str],
) -> list[dict[str, Any]]:
    """`{"label", "tokens", "attributions", "method"}` per row, for the row's chosen label."""
    targets = [labels.index(label) for label in chosen]
    scores = token_attributions(model, batch, targets).cpu()
    ids = batch["input_ids"].detach().cpu()
    mask = batch.get("attention_mask")
    mask = mask.detach().cpu() if mask is not None else torch.ones_like(ids)
    dropped = _dropped_ids(tokenizer)
    explanations: list[dict[str, Any]] = []
    for row_ids, row_mask, row_scores, label in zip(
        ids.tolist(), mask.tolist(), scores.tolist(), chosen, strict=True
    ):
        kept = [
            (i, s) for i, m, s in zip(row_ids, row_mask, row_scores, strict=True) if m and i not in dropped
        ]
        explanations.append(
            {
                "label": label,
                "tokens": tokenizer.convert_ids_to_tokens([i for i, _ in kept]),
                "attributions": [_significant(s) for _, s in kept],
                "method": TEXT_METHOD,
            }
        )
    return explanations


# ---- images ------------------------------------------------------------------------------------------


def pixel_saliency(model: nn.Module, pixel_values: torch.Tensor, targets: Sequence[int]) -> torch.Tensor:
    """|d logit[target] / d pixel| maxed over channels, [batch, height, width] float32."""
    pixels = pixel_values.detach().float().clone().requires_grad_(True)
    logits = model(pixel_values=pixels).logits
    (gradient,) = torch.autograd.grad(_target_logits(logits, targets).sum(), pixels)
    return gradient.abs().amax(dim=1).detach().float()


def _shrunk_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    if max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def saliency_png(saliency: torch.Tensor, max_side: int = SALIENCY_MAX_SIDE) -> tuple[bytes, int, int]:
    """One [height, width] map as grayscale PNG bytes (scaled to 0..255, at most `max_side` a side),
    with its width and height. An all-zero map stays black."""
    height, width = _shrunk_size(int(saliency.shape[0]), int(saliency.shape[1]), max_side)
    small = saliency.detach().float().cpu()[None, None]
    if (height, width) != tuple(saliency.shape):
        small = F.interpolate(small, size=(height, width), mode="area")
    values = torch.nan_to_num(small[0, 0], nan=0.0, posinf=0.0, neginf=0.0).clamp(min=0.0)
    peak = float(values.max()) if values.numel() else 0.0
    scaled = values / peak * 255.0 if peak > 0 else torch.zeros_like(values)
    pixels = np.ascontiguousarray(scaled.round().clamp(0, 255).to(torch.uint8).numpy())
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue(), width, height


def saliency_explanations(
    model: nn.Module, pixel_values: torch.Tensor, labels: Sequence[str], chosen: Sequence[str]
) -> list[dict[str, Any]]:
    """`{"label", "png_base64", "width", "height", "method"}` per image, for its chosen label."""
    maps = pixel_saliency(model, pixel_values, [labels.index(label) for label in chosen])
    explanations: list[dict[str, Any]] = []
    for saliency, label in zip(maps, chosen, strict=True):
        png, width, height = saliency_png(saliency)
        explanations.append(
            {
                "label": label,
                "png_base64": base64.b64encode(png).decode("ascii"),
                "width": width,
                "height": height,
                "method": IMAGE_METHOD,
            }
        )
    return explanations
