"""The reproducibility record of a finished predict, evaluate or batch job.

The finalizer builds it once the output and error files are joined, writes it as `manifest.json`
beside them and stores the same object on the job row (`reproducibility` in the job object). It holds
what a rerun needs to match: the exact model version, its weights and tokenizer hashes, the precision
and device kind the parts ran on, the library versions, the batch settings, the seed, and the sha256
of the input, output and error files. It has no timestamps, so a duplicate finalize writes the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from inferq.shared.job_types import JobType
from inferq.shared.registry import ResolvedModel, builtin_path
from inferq.shared.settings import Settings
from inferq.shared.storage import Storage

# The files of a Hugging Face folder that decide how text becomes token ids, hashed in this order.
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
LIBRARIES = ("torch", "transformers", "inferq")
# Job types whose finalizer writes a record (a train job's record is its model version).
RECORDED_TYPES = frozenset({JobType.PREDICT, JobType.EVALUATE, JobType.BATCH})


@dataclass(frozen=True)
class ResultHashes:
    """The files the job read and wrote: ids and sha256."""

    input_file_id: str | None
    input_sha256: str | None
    output_file_id: str
    output_sha256: str
    error_file_id: str
    error_sha256: str


def tokenizer_sha256(read: Callable[[str], bytes | None]) -> str | None:
    """sha256 over the tokenizer files present, in TOKENIZER_FILES order: for each, its name, a newline
    and the sha256 of its bytes. `read(name)` returns a file's bytes or None when it is absent.
    None when the folder has none of them (an image model)."""
    h = hashlib.sha256()
    found = False
    for name in TOKENIZER_FILES:
        data = read(name)
        if data is None:
            continue
        found = True
        h.update(name.encode() + b"\n")
        h.update(hashlib.sha256(data).digest())
    return h.hexdigest() if found else None


@functools.lru_cache(maxsize=8)
def _builtin_tokenizer_sha256(name: str) -> str | None:
    folder = builtin_path(name)

    def read(file: str) -> bytes | None:
        path = Path(folder) / file
        return path.read_bytes() if path.is_file() else None

    return tokenizer_sha256(read)


def model_tokenizer_sha256(storage: Storage, model: ResolvedModel) -> str | None:
    """The tokenizer hash of a built-in (its local folder) or a tenant model (its storage folder)."""
    if model.builtin:
        return _builtin_tokenizer_sha256(model.name)
    prefix = model.source if model.source.endswith("/") else model.source + "/"

    def read(file: str) -> bytes | None:
        key = prefix + file
        return storage.read_bytes(key) if storage.exists(key) else None

    return tokenizer_sha256(read)


def library_versions() -> dict[str, str | None]:
    """Python's version and the installed distributions' versions (None when one is not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _joined(values: Iterable[str]) -> str | None:
    """Distinct values, sorted and comma-joined (parts on different workers may differ); None if none."""
    seen = sorted(set(values))
    return ",".join(seen) if seen else None


def runtime_of(part_stats: list[dict[str, Any] | None]) -> dict[str, str | None]:
    """The precision and the device kind (`cuda:1` → `cuda`) the parts recorded in their stats."""
    stats = [s for s in part_stats if s]
    return {
        "precision": _joined(str(s["precision"]) for s in stats if s.get("precision")),
        "device": _joined(str(s["device"]).split(":", 1)[0] for s in stats if s.get("device")),
    }


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def build_record(
    *,
    job_id: str,
    job_type: JobType,
    task: str,
    model: ResolvedModel,
    tokenizer_hash: str | None,
    params: dict[str, Any],
    settings: Settings,
    part_stats: list[dict[str, Any] | None],
    files: ResultHashes,
) -> dict[str, Any]:
    """The record: plain JSON, the same in the job object and in manifest.json."""
    return {
        "object": "job.manifest",
        "job": job_id,
        "type": job_type,
        "task": task,
        "model": {
            "ref": model.ref,
            "name": model.name,
            "version": model.version,
            "version_id": model.version_id,
            "weights_sha256": model.weights_sha256,
            "tokenizer_sha256": tokenizer_hash,
        },
        "runtime": runtime_of(part_stats),
        "libraries": library_versions(),
        "batching": {
            # null: the worker's default for its device (worker.inference.batching_for)
            "batch_tokens": _int_or_none(params.get("batch_tokens")) or settings.batch_tokens or None,
            "max_batch_size": settings.max_batch_size or None,
            "max_length": _int_or_none(params.get("max_length")),
        },
        "seed": _int_or_none(params.get("seed")),
        "input_file": {"id": files.input_file_id, "sha256": files.input_sha256},
        "output_file": {"id": files.output_file_id, "sha256": files.output_sha256},
        "error_file": {"id": files.error_file_id, "sha256": files.error_sha256},
    }


def manifest_bytes(record: dict[str, Any]) -> bytes:
    """manifest.json: the record, indented, keys in a stable order, ending in a newline."""
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
