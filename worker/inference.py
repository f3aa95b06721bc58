"""The task-agnostic batching loop: preprocess, batch by length under a token budget, run, restore order."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from inferq.shared.errors import InvalidRequest
from inferq.worker.batching import padded_tokens, padding_ratio, plan_batches
from inferq.worker.explain import add_explanations, wants_explanations
from inferq.worker.metrics import observe_batch
from inferq.worker.predictors.base import Predictor, Prepared

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class Stopped(Exception):
    """`on_batch` asked to stop (job cancelled, lease lost); `completed` items were done before."""

    def __init__(self, completed: int) -> None:
        super().__init__(f"stopped after {completed} items")
        self.completed = completed


@dataclass
class PredictionResult:
    outputs: list[dict[str, Any]]  # one per input value, in input order
    stats: dict[str, Any] = field(default_factory=dict)
    tokens: list[int] = field(default_factory=list)  # tokens each input value took, in input order


# Default batching per device: (batch_tokens, max_batch_size). CPU: chosen from the sweep in
# benchmarks/RESULTS.md (benchmarks/batching_sweep.py): small length-sorted batches keep the activations in
# cache and padding low; the old 16384 x 128 ran at half the speed. GPU: from the H200 sweep in the same
# file (benchmarks/gpu_run.py): a small model's batches are bound by kernel launches, not by the GPU, so
# fewer, larger batches win (65536 x 512: 11.4k records/s, 16384 x 128: 8.1k, 8192 x 64: 5.2k).
CPU_BATCHING = (2048, 32)
GPU_BATCHING = (65536, 512)


def batching_for(device: torch.device, batch_tokens: int = 0, max_batch_size: int = 0) -> tuple[int, int]:
    """The token budget and batch-size cap to use on `device`; a non-zero argument wins over the default."""
    default_tokens, default_size = GPU_BATCHING if device.type == "cuda" else CPU_BATCHING
    return batch_tokens or default_tokens, max_batch_size or default_size


def resolve_device() -> torch.device:
    """The GPU this worker process sees (one per process), else the CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


# bf16 pays on the CPU only with AMX tile units. AVX512-BF16 alone (a dot-product instruction, seen on a
# Xeon whose AMX the hypervisor hid) ran MiniLM 1.45x SLOWER under bf16 autocast than in fp32 (32 x 64
# tokens, one thread: 0.65 s vs 0.45 s a batch), so `auto` stays fp32 there.
CPU_BF16_FLAGS = ("amx_bf16",)


def cpu_flags_have_bf16(cpuinfo: str) -> bool:
    """Whether a /proc/cpuinfo text names a bf16 matrix unit (AMX-BF16)."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return any(flag in flags for flag in CPU_BF16_FLAGS)
    return False


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 faster than fp32 (checked once per process): AMX-BF16.

    torch's dispatch level names AMX where it uses it; otherwise the CPU flags decide. Without AMX, bf16
    matmuls are emulated or run on AVX512-BF16 dot products and are slower than fp32, so `auto` stays
    fp32 there.
    """
    capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    if "AMX" in capability:
        return True
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return cpu_flags_have_bf16(f.read())
    except OSError:
        return False


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for a precision setting; None runs in float32.

    auto: bf16 on a GPU that supports it (fp16 on older GPUs); on the CPU bf16 where it has AMX-BF16
    units, fp32 elsewhere. bf16 and fp16 are honored as asked, on the CPU too.
    """
    if precision not in PRECISIONS:
        raise InvalidRequest(
            f"params.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}",
            field="params.precision",
        )
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if device.type == "cpu" and cpu_has_bf16() else None


def precision_name(dtype: torch.dtype | None) -> str:
    """The `params.precision` name of an autocast dtype (what a part's stats record)."""
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32") if dtype else "fp32"


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _one_in_flight(
    predictor: Predictor, prepared: Prepared, batches: list[list[int]]
) -> Iterator[tuple[list[int], Any]]:
    """Collate and launch each batch, and hand back a batch only once the next one is launched.

    On a GPU a launch returns at once, so collating the next batch (and its pinned host-to-device copy)
    overlaps this batch's kernels, and the GPU never waits for the CPU between batches. On the CPU the
    order changes nothing but when the caller hears of a batch.
    """
    in_flight: tuple[list[int], Any] | None = None
    for indices in batches:
        with torch.inference_mode():
            launched = (indices, predictor.forward(predictor.collate(prepared, indices)))
        if in_flight is not None:
            yield in_flight
        in_flight = launched
    if in_flight is not None:
        yield in_flight


def run_predictions(
    predictor: Predictor,
    values: list[Any],
    params: dict[str, Any],
    *,
    batch_tokens: int,
    max_batch_size: int,
    on_batch: Callable[[int], bool] | None = None,
) -> PredictionResult:
    """Run `predictor` over `values` in length-sorted batches; outputs come back in input order.

    `on_batch(n)` is called after each batch with the number of items it finished; returning False
    raises `Stopped`.
    """
    started = time.perf_counter()
    prepared = predictor.preprocess(values, params)
    preprocess_seconds = time.perf_counter() - started
    if len(prepared.lengths) != len(values):
        raise RuntimeError(
            f"{type(predictor).__name__}.preprocess returned {len(prepared.lengths)} lengths "
            f"for {len(values)} values"
        )
    batches = plan_batches(prepared.lengths, batch_tokens, max_batch_size)
    dtype = autocast_dtype(predictor.device, str(params.get("precision") or "auto"))
    outputs: list[dict[str, Any] | None] = [None] * len(values)
    explain = wants_explanations(params)  # a second, grad-enabled fp32 pass per batch (worker.explain)
    forward_seconds = explain_seconds = 0.0
    done = 0
    mark = time.perf_counter()  # when the last batch was finished (or the loop started)
    # One autocast context around all the batches: autocast caches the low-precision copy of each weight
    # until its outermost context exits, so the weights are cast once per call, not once per batch (on
    # the H200 the per-batch casts made bf16 slower than fp32 for MiniLM: its batches are launch-bound).
    with _autocast(predictor.device, dtype):
        for indices, output in _one_in_flight(predictor, prepared, batches):
            with torch.inference_mode():
                results = predictor.postprocess(output, params)  # on a GPU: waits for the batch's kernels
            if len(results) != len(indices):
                raise RuntimeError(
                    f"{type(predictor).__name__}.postprocess returned {len(results)} results "
                    f"for {len(indices)} items"
                )
            now = time.perf_counter()
            batch_seconds, mark = now - mark, now  # collate, forward and postprocess, overlapped
            forward_seconds += batch_seconds
            observe_batch(
                predictor.task,
                len(indices),
                padding_ratio(prepared.lengths, [indices]),
                batch_seconds,
                predictor.device.type,
            )
            if explain:
                explain_seconds += add_explanations(predictor, prepared, indices, results)
                mark = time.perf_counter()
            for i, result in zip(indices, results, strict=True):
                outputs[i] = result
            done += len(indices)
            if on_batch is not None and not on_batch(len(indices)):
                raise Stopped(done)
    stats = {
        "batches": len(batches),
        "padding_ratio": round(padding_ratio(prepared.lengths, batches), 4),
        "tokens": sum(prepared.lengths),
        # Token slots the batches ran (padding included): jobs sum it over parts for their padding ratio.
        "padded_tokens": padded_tokens(prepared.lengths, batches),
        "forward_seconds": round(forward_seconds, 4),
        "preprocess_seconds": round(preprocess_seconds, 4),
        "precision": precision_name(dtype),
    }
    if explain:
        stats.update(
            explained=len(values),
            explain_method=predictor.explain_method,
            explain_seconds=round(explain_seconds, 4),
        )
    log.debug("predicted %d items: %s", len(values), stats)
    return PredictionResult(
        outputs=[o for o in outputs if o is not None], stats=stats, tokens=list(prepared.lengths)
    )
