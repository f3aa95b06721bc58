"""The result cache's pure parts (`params.cache: true`): keys, stored results, a part's plan, metrics.

A record is served from an earlier result when its **key** is already stored for the tenant
(`shared.models.ResultCache`). The key is the sha256 of a canonical JSON document of:

- the model version: its resolved reference (`sentiment:3`), its version row id and its weights' sha256
  (the built-in models carry a fixed identity instead of a hash), so a retrained or re-registered
  model never shares results with an older one;
- the task;
- every job parameter that can change a record's output: all of `params` except those listed in
  `NON_OUTPUT_PARAMS` (batch_tokens, output_format, cache itself). An absent parameter is absent from
  the key (it is not replaced by the model's default, so `normalize: true` and an omitted `normalize`
  are different keys: never a wrong hit, only a missed one). `precision` is replaced by the precision
  the part actually runs in on its device (`auto` is fp32 on most CPUs and bf16 on GPUs), so results
  computed in bf16 are never served to a job that runs in fp32, and vice versa;
- the normalized input: text in Unicode NFC with surrounding whitespace stripped (the BERT-style
  tokenizers of the built-in and trained models ignore both differences); an image as the sha256 of its
  decoded pixels (mode, size, RGB bytes), so `image` (base64) and `image_key` records are cached by the
  picture itself, never by an object's name, and the same picture in two encodings of the same pixels
  shares a key.

The stored result is the record's output line without its `id`: a JSON object mapping each output
field to that field's exact JSON text. Lines served from it are byte-for-byte the lines the model's
outputs gave when they were computed (`orjson.Fragment`), not a re-encoding of parsed floats.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from PIL import Image

from inferq.shared.job_types import JobType
from inferq.shared.registry import ResolvedModel
from inferq.worker.images import ImageError, ImageSource

KEY_VERSION = 1
# Parameters that never change a record's output: they are left out of the key.
NON_OUTPUT_PARAMS = frozenset({"batch_tokens", "output_format", "cache"})
# Job types whose output line is `{"id", **output}` for exactly one input value per record.
CACHED_JOB_TYPES = frozenset({JobType.PREDICT})


def wanted(job_type: JobType, params: Mapping[str, Any]) -> bool:
    """Whether a part of this job uses the cache: a predict job that asked for it."""
    return job_type in CACHED_JOB_TYPES and params.get("cache") is True


def normalize_text(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


def input_digest(value: Any) -> str | None:
    """What the key says of one input value; None for a value the cache does not know (computed)."""
    if isinstance(value, str):
        return "text:" + normalize_text(value)
    if isinstance(value, ImageSource):  # decoded here one at a time for its digest, then dropped
        try:
            value = value.decode()
        except ImageError:
            return None  # no key: predicted (and failed) like any uncached record
    if isinstance(value, Image.Image):
        h = hashlib.sha256(f"{value.mode}:{value.width}x{value.height}:".encode())
        h.update(value.tobytes())
        return "image:" + h.hexdigest()
    return None


def model_identity(model: ResolvedModel) -> dict[str, Any]:
    return {"ref": model.ref, "version_id": model.version_id, "weights_sha256": model.weights_sha256}


def output_params(params: Mapping[str, Any], precision: str) -> dict[str, Any]:
    """The parameters in the key: those that change outputs, `precision` as the part runs it."""
    kept = {k: v for k, v in params.items() if k not in NON_OUTPUT_PARAMS}
    kept["precision"] = precision
    return kept


@dataclass(frozen=True)
class KeySpace:
    """Everything a key says besides the input, hashed once per part."""

    prefix: bytes
    precision: str  # the precision the part runs in (what the key says of `params.precision`)

    @classmethod
    def of(cls, model: ResolvedModel, task: str, params: Mapping[str, Any], precision: str) -> KeySpace:
        document = {
            "v": KEY_VERSION,
            "model": model_identity(model),
            "task": task,
            "params": output_params(params, precision),
        }
        return cls(orjson.dumps(document, option=orjson.OPT_SORT_KEYS) + b"\n", precision)

    def key(self, value: Any) -> str | None:
        """The sha256 hex key of one input value, or None when it is not cacheable."""
        digest = input_digest(value)
        if digest is None:
            return None
        return hashlib.sha256(self.prefix + digest.encode("utf-8", "surrogatepass")).hexdigest()


def encode_result(output: Mapping[str, Any]) -> str:
    """A record's output (without its id) as stored: each field's exact JSON text, in field order."""
    return orjson.dumps(
        {
            name: orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
            for name, value in output.items()
        }
    ).decode()


def decode_result(text: str) -> dict[str, Any]:
    """A stored result as an output dict whose values serialize to exactly the stored JSON texts."""
    stored = orjson.loads(text)
    if not isinstance(stored, dict) or not all(isinstance(v, str) for v in stored.values()):
        raise ValueError("not a stored result: expected an object of JSON texts")
    return {name: orjson.Fragment(raw) for name, raw in stored.items()}


@dataclass
class CachedOutputs:
    outputs: list[dict[str, Any]]  # one per record, in input order
    tokens: list[int]  # tokens each record took when computed here (0: served without computing)
    new_results: dict[str, str]  # key -> stored result, for the records computed here


@dataclass
class PartPlan:
    """How a part's records are served: `compute` (record indices, in input order) run the model, the
    others repeat a stored result (`hits`) or an earlier record of the same part (`duplicates`)."""

    keys: list[str | None]
    served: dict[int, dict[str, Any]] = field(default_factory=dict)  # record index -> decoded stored result
    compute: list[int] = field(default_factory=list)
    same_as: dict[int, int] = field(default_factory=dict)  # duplicate record index -> the computed one
    bad_results: int = 0  # stored results that did not decode: their records are computed

    @property
    def hits(self) -> int:
        return len(self.served)

    @property
    def duplicates(self) -> int:
        return len(self.same_as)

    def stats(self) -> dict[str, int]:
        """Per-part counts for the part's stats (and its `part_done` event)."""
        records = len(self.keys)
        return {
            "cache_hits": self.hits,
            "cache_misses": records - self.hits,
            "cache_computed": len(self.compute),
            "cache_duplicates": self.duplicates,
        }

    def merge(self, outputs: Sequence[dict[str, Any]], tokens: Sequence[int]) -> CachedOutputs:
        """The part's outputs in input order, from the computed records' `outputs` (in `compute` order)."""
        if len(outputs) != len(self.compute):
            raise RuntimeError(f"{len(outputs)} outputs for {len(self.compute)} computed records")
        all_outputs: list[dict[str, Any] | None] = [None] * len(self.keys)
        all_tokens = [0] * len(self.keys)
        new_results: dict[str, str] = {}
        for position, index in enumerate(self.compute):
            all_outputs[index] = outputs[position]
            all_tokens[index] = tokens[position] if position < len(tokens) else 0
            key = self.keys[index]
            if key is not None:
                new_results[key] = encode_result(outputs[position])
        for index, result in self.served.items():
            all_outputs[index] = result
        for index, source in self.same_as.items():
            all_outputs[index] = all_outputs[source]
            all_tokens[index] = 0
        missing = [i for i, out in enumerate(all_outputs) if out is None]
        if missing:
            raise RuntimeError(f"no output for records {missing[:5]}")
        return CachedOutputs([o for o in all_outputs if o is not None], all_tokens, new_results)


def plan_part(keys: Sequence[str | None], stored: Mapping[str, str]) -> PartPlan:
    """Which records to compute, given each record's key and the stored results found for them.

    A stored result that does not decode is treated as absent: the record is computed (its row is
    left as it is; inserts never overwrite).
    """
    plan = PartPlan(keys=list(keys))
    decoded: dict[str, dict[str, Any] | None] = {}
    first: dict[str, int] = {}
    for index, key in enumerate(plan.keys):
        if key is None:
            plan.compute.append(index)
            continue
        if key in stored:
            if key not in decoded:
                try:
                    decoded[key] = decode_result(stored[key])
                except ValueError:
                    decoded[key] = None
                    plan.bad_results += 1
            result = decoded[key]
            if result is not None:
                plan.served[index] = result
                continue
        if key in first:
            plan.same_as[index] = first[key]
        else:
            first[key] = index
            plan.compute.append(index)
    return plan


def cache_metrics(part_stats: Sequence[Mapping[str, Any] | None]) -> dict[str, int]:
    """A job's cache totals from its parts' stats; empty when no part used the cache."""
    used = [s for s in part_stats if s and "cache_hits" in s]
    if not used:
        return {}
    return {
        "cache_hits": sum(int(s.get("cache_hits") or 0) for s in used),
        "cache_misses": sum(int(s.get("cache_misses") or 0) for s in used),
    }


def cache_message(metrics: Mapping[str, int]) -> str:
    hits, misses = int(metrics.get("cache_hits", 0)), int(metrics.get("cache_misses", 0))
    return f"result cache: {hits} of {hits + misses} records served from earlier results"
