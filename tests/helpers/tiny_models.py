"""Tiny random-weight models saved as real Hugging Face folders (safetensors), for fast tests."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (  # type: ignore[attr-defined]  # BertTokenizerFast: a lazy alias in transformers 5
    BertConfig,
    BertForSequenceClassification,
    BertTokenizerFast,
)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "the a an is was good bad great terrible movie film book food service fast slow love hate "
    "it this that and or not very really quite i you we they like liked loved hated boring fun "
    "happy sad angry okay fine awful excellent price cheap expensive hello world"
).split()
PIECES = ["##s", "##ed", "##ing", "##ly", "##er", ".", ",", "!", "?"]


def make_tiny_text_classifier(path: Path, labels: list[str], *, seed: int = 0) -> Path:
    """A 2-layer BERT (hidden size 32) with a classification head over `labels`, plus its tokenizer."""
    path.mkdir(parents=True, exist_ok=True)
    vocab = [*SPECIAL_TOKENS, *WORDS, *PIECES]
    vocab_file = path / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        initializer_range=0.3,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(path)
    # `vocab=`, not `vocab_file=`: transformers 5 ignores the latter and the tokenizer would know only the
    # special tokens, reading every word as [UNK].
    tokenizer = BertTokenizerFast(vocab=str(vocab_file), do_lower_case=True, model_max_length=64)
    tokenizer.save_pretrained(path)
    if not (path / "model.safetensors").is_file():
        raise RuntimeError(f"save_pretrained wrote no model.safetensors in {path}")
    return path


def make_tiny_image_classifier(path: Path, labels: list[str], kind: str = "vit", *, seed: int = 0) -> Path:
    """A tiny random-weight ViT or ResNet image classifier (16x16 inputs) with its image processor."""
    from transformers import (  # type: ignore[attr-defined]
        ResNetConfig,
        ResNetForImageClassification,
        ViTConfig,
        ViTForImageClassification,
        ViTImageProcessor,
    )

    path.mkdir(parents=True, exist_ok=True)
    id2label = dict(enumerate(labels))
    label2id = {label: i for i, label in enumerate(labels)}
    torch.manual_seed(seed)
    model: torch.nn.Module
    if kind == "vit":
        model = ViTForImageClassification(
            ViTConfig(
                image_size=16,
                patch_size=4,
                hidden_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=32,
                id2label=id2label,
                label2id=label2id,
            )
        )
    else:
        model = ResNetForImageClassification(
            ResNetConfig(
                embedding_size=8,
                hidden_sizes=[8, 16],
                depths=[1, 1],
                layer_type="basic",
                id2label=id2label,
                label2id=label2id,
            )
        )
    model.eval().save_pretrained(path)  # type: ignore[operator]
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(path)
    if not (path / "model.safetensors").is_file():
        raise RuntimeError(f"save_pretrained wrote no model.safetensors in {path}")
    return path
