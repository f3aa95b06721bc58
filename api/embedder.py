"""Synchronous embeddings in the API process: the workers' predictor code, loaded lazily once per process.

The model runs on the CPU (the GPUs belong to the workers) through the same `run_predictions` loop as a
job's part, so a text gets the same vector here as in a job. One request runs at a time per process:
predictors are not shared between threads, and these requests are meant to be small.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import orjson

from inferq.shared.errors import InvalidRequest
from inferq.shared.registry import ResolvedModel
from inferq.shared.settings import Settings
from inferq.shared.storage import Storage
from inferq.shared.tasks import EMBEDDING
from inferq.worker.model_cache import ModelCache

log = logging.getLogger(__name__)

DEVICE = "cpu"
MAX_INPUT_TOKENS = 8192

_lock = threading.Lock()
_cache: ModelCache | None = None


@dataclass(frozen=True)
class Embeddings:
    vectors: list[list[float]]  # one per text, in order
    tokens: list[int]  # tokens the model read of each text (after truncation to its max_length)


def _model_cache(settings: Settings) -> ModelCache:
    global _cache
    if _cache is None:
        import torch

        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        _cache = ModelCache(settings.model_cache_size)
    return _cache


def _check_lengths(tokenizer: object, texts: list[str]) -> None:
    """Refuse a text of more than MAX_INPUT_TOKENS tokens, as OpenAI does. A text of at most that many
    UTF-8 bytes cannot have more tokens, so only longer ones are tokenized for the check."""
    for i, text in enumerate(texts):
        if len(text.encode("utf-8")) <= MAX_INPUT_TOKENS:
            continue
        ids = tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"]  # type: ignore[operator]
        if len(ids) > MAX_INPUT_TOKENS:
            raise InvalidRequest(
                f"input[{i}] has {len(ids)} tokens; at most {MAX_INPUT_TOKENS} are accepted",
                field="input",
                code="input_too_long",
            )


def embed(settings: Settings, storage: Storage, model: ResolvedModel, texts: list[str]) -> Embeddings:
    from inferq.worker.inference import batching_for, run_predictions

    with _lock:
        predictor = _model_cache(settings).get(model, EMBEDDING, storage, settings.model_cache_dir, DEVICE)
        _check_lengths(getattr(predictor, "tokenizer", None), texts)
        batch_tokens, max_batch_size = batching_for(
            predictor.device, settings.batch_tokens, settings.max_batch_size
        )
        result = run_predictions(
            predictor,
            texts,
            {},
            batch_tokens=batch_tokens,
            max_batch_size=max_batch_size,
        )
    log.debug("embedded %d texts with %s: %s", len(texts), model.ref, result.stats)
    # Workers write numpy rows straight to JSON lines; here the HTTP answer needs lists (through orjson's
    # float32 writer, so the values are the same shortest decimals as in a job's output).
    vectors: list[list[float]] = orjson.loads(
        orjson.dumps([out["embedding"] for out in result.outputs], option=orjson.OPT_SERIALIZE_NUMPY)
    )
    return Embeddings(vectors=vectors, tokens=result.tokens)
