"""How many tokens a text model can take: the one place for its `max_length` bounds.

The least is its special tokens (`[CLS]`, `[SEP]`, …) plus one token of text: below that a Hugging Face
tokenizer does not truncate at all (it logs an error and returns the whole text), and the sequence
overflows the position embeddings. The most is its position embeddings, or its tokenizer's
`model_max_length` when that is smaller (RoBERTa has 514 positions and takes 512 tokens).

Read from the model folder's JSON files only (`config.json`, `tokenizer.json`, `tokenizer_config.json`),
so the API needs neither torch nor a tokenizer: `read_limits` runs when a model is registered and its
result is kept in the version's `config` (`max_positions`, `special_tokens`); `limits_of` reads it back,
or the built-in model's own folder. The worker clamps with the same `TokenLimits` from the loaded
tokenizer, so a job submitted before these checks cannot crash a part.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inferq.shared.errors import InvalidRequest

if TYPE_CHECKING:
    from inferq.shared.registry import ResolvedModel

log = logging.getLogger(__name__)

# Tokenizers report a huge sentinel (about 1e30) when they have no limit of their own.
NO_LIMIT = 1_000_000
DEFAULT_POSITIONS = 512
# Versions registered before their limits were recorded: BERT-like, [CLS] … [SEP].
DEFAULT_SPECIAL_TOKENS = 2
# Post-processors that wrap a single text in two special tokens.
TWO_TOKEN_PROCESSORS = frozenset({"BertProcessing", "RobertaProcessing"})
MAX_POSITIONS_KEY = "max_positions"
SPECIAL_TOKENS_KEY = "special_tokens"


@dataclass(frozen=True)
class TokenLimits:
    special_tokens: int  # added around a single text
    max_positions: int  # the most tokens, special ones included

    @property
    def min_length(self) -> int:
        """The least `max_length` that keeps a token of text (never above `max_positions`)."""
        return min(self.special_tokens + 1, self.max_positions)

    def clamp(self, max_length: int) -> int:
        """`max_length` brought within what the model can take."""
        return max(self.min_length, min(max_length, self.max_positions))

    def as_config(self) -> dict[str, int]:
        return {MAX_POSITIONS_KEY: self.max_positions, SPECIAL_TOKENS_KEY: self.special_tokens}


def position_limit(max_position_embeddings: int | None, tokenizer_max_length: int | None) -> int:
    """The most tokens a model takes: its position embeddings, or its tokenizer's limit when smaller."""
    limit = int(max_position_embeddings or 0) or NO_LIMIT
    if 0 < int(tokenizer_max_length or 0) < NO_LIMIT:
        limit = min(limit, int(tokenizer_max_length or 0))
    return limit if limit < NO_LIMIT else DEFAULT_POSITIONS


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        log.warning("%s is not valid JSON (%s); its limits are not read", path, e)
        return {}
    return data if isinstance(data, dict) else {}


def _processor_tokens(processor: Any) -> int | None:
    """Special tokens a `tokenizer.json` post-processor adds to one text; None when it cannot be told."""
    if processor is None:
        return 0
    if not isinstance(processor, dict):
        return None
    kind = processor.get("type")
    if kind in TWO_TOKEN_PROCESSORS:
        return 2
    if kind == "ByteLevel":
        return 0
    if kind == "TemplateProcessing":
        tokens = processor.get("special_tokens") or {}
        count = 0
        for piece in processor.get("single") or []:
            special = piece.get("SpecialToken") if isinstance(piece, dict) else None
            if isinstance(special, dict):
                count += len((tokens.get(special.get("id")) or {}).get("ids") or [None])
        return count
    if kind == "Sequence":
        counts = [_processor_tokens(p) for p in processor.get("processors") or []]
        return None if None in counts else sum(c for c in counts if c is not None)
    return None


def read_limits(folder: Path) -> TokenLimits:
    """The limits of a Hugging Face model folder, from its JSON files alone."""
    config = _json(folder / "config.json")
    tokenizer_config = _json(folder / "tokenizer_config.json")
    special = None
    if (folder / "tokenizer.json").is_file():
        special = _processor_tokens(_json(folder / "tokenizer.json").get("post_processor"))
    return TokenLimits(
        special_tokens=DEFAULT_SPECIAL_TOKENS if special is None else special,
        max_positions=position_limit(
            config.get("max_position_embeddings"), tokenizer_config.get("model_max_length")
        ),
    )


@functools.lru_cache(maxsize=8)
def _builtin_limits(name: str) -> TokenLimits:
    from inferq.shared.registry import builtin_files_path

    return read_limits(builtin_files_path(name))


def limits_of(model: ResolvedModel) -> TokenLimits:
    """A version's limits: recorded at registration, read from a built-in's folder, or (a version registered
    before they were recorded) its `max_length` and BERT's two special tokens."""
    if model.builtin:
        return _builtin_limits(model.name)
    config = model.config or {}
    positions = config.get(MAX_POSITIONS_KEY) or config.get("max_length") or DEFAULT_POSITIONS
    special = config.get(SPECIAL_TOKENS_KEY)
    return TokenLimits(
        special_tokens=DEFAULT_SPECIAL_TOKENS if special is None else int(special),
        max_positions=int(positions),
    )


def check_max_length(value: int | None, model: ResolvedModel | None, field: str) -> None:
    """A 400 on `field` unless `value` (a job's max_length, None: the model's own) fits `model` (None: not
    known yet, a job waiting for its model to be trained; the worker clamps then)."""
    if value is None or model is None:
        return
    limits = limits_of(model)
    if not limits.min_length <= value <= limits.max_positions:
        raise InvalidRequest(
            f"{field} must be from {limits.min_length} to {limits.max_positions} for model {model.ref}: "
            f"it adds {limits.special_tokens} special tokens to each text and has {limits.max_positions} "
            f"positions, got {value}",
            field=field,
            code="invalid_value",
        )
