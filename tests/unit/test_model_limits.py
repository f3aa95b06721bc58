"""`shared.model_limits`: a model's max_length bounds read from its folder's JSON files alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from inferq.shared.model_limits import TokenLimits, limits_of, read_limits
from inferq.shared.registry import ResolvedModel

BERT_TEMPLATE = {
    "type": "TemplateProcessing",
    "single": [
        {"SpecialToken": {"id": "[CLS]", "type_id": 0}},
        {"Sequence": {"id": "A", "type_id": 0}},
        {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
    ],
    "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [101]}, "[SEP]": {"id": "[SEP]", "ids": [102]}},
}


def folder(tmp_path: Path, processor: Any, positions: int = 514, tokenizer_max: int | None = 512) -> Path:
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": positions}))
    (tmp_path / "tokenizer.json").write_text(json.dumps({"post_processor": processor}))
    if tokenizer_max is not None:
        (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": tokenizer_max}))
    return tmp_path


@pytest.mark.parametrize(
    ("processor", "special"),
    [
        (BERT_TEMPLATE, 2),
        ({"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0]}, 2),
        ({"type": "ByteLevel"}, 0),
        (None, 0),
        ({"type": "Sequence", "processors": [{"type": "ByteLevel"}, BERT_TEMPLATE]}, 2),
        ({"type": "SomethingNew"}, 2),  # unknown: BERT's two, the common case
    ],
)
def test_special_tokens_come_from_the_post_processor(tmp_path: Path, processor: Any, special: int) -> None:
    # given a folder whose tokenizer.json has this post-processor (514 positions, a tokenizer limit of 512)
    limits = read_limits(folder(tmp_path, processor))

    # then its special tokens are counted and its positions are the smaller limit
    assert limits == TokenLimits(special_tokens=special, max_positions=512)
    assert limits.min_length == special + 1


def test_a_tokenizer_without_a_limit_leaves_the_position_embeddings(tmp_path: Path) -> None:
    limits = read_limits(folder(tmp_path, BERT_TEMPLATE, positions=64, tokenizer_max=10**30))
    assert limits.max_positions == 64


def test_clamp_keeps_a_token_of_text_and_stays_within_the_positions() -> None:
    limits = TokenLimits(special_tokens=2, max_positions=64)
    assert [limits.clamp(n) for n in (1, 2, 3, 40, 64, 65, 10_000)] == [3, 3, 3, 40, 64, 64, 64]


def test_a_version_registered_before_limits_were_recorded_uses_its_max_length() -> None:
    old = ResolvedModel(name="m", version=1, task="embedding", source="p/", config={"max_length": 128})
    assert limits_of(old) == TokenLimits(special_tokens=2, max_positions=128)


def test_the_builtin_models_limits_are_read_without_torch() -> None:
    # when the built-in model's limits are read in a fresh interpreter, as the API would
    code = (
        "import sys; from shared.model_limits import limits_of; from shared.registry import BUILTINS; "
        "l = limits_of(BUILTINS['minilm-l6']); "
        "print(l.special_tokens, l.max_positions, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    # then they are its two special tokens and 512 positions, and torch was never imported
    assert out.split() == ["2", "512", "False"]
