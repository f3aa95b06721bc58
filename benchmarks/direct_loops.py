"""Direct loops on the same real texts (issue #6, item 3): how fast can the model run without the service?

    .venv/bin/python benchmarks/direct_loops.py --records 2000 --repeats 2

all-MiniLM-L6-v2 (the built-in `minilm-l6`), tokenization included, vectors mean-pooled and normalized:
- `batch1`: one text per call (a seed-style loop);
- `naive32`: batches of 32 in file order, padded to the longest (the typical hand-written HF loop);
- `st_fp32`: sentence-transformers' `encode(batch_size=32)` (it sorts by length), fp32;
- `inferq_fp32` / `inferq_auto`: the project's own loop, `worker.inference.run_predictions` with the
  embedding predictor (token-budget batches of length-sorted texts) at fp32 and at the automatic precision
  (bf16 on CPUs with bf16 units).
Each loop runs in its own process (so its peak RSS is its own), `--repeats` times; the best time counts.
Prints Markdown rows and appends them to benchmarks/RESULTS.md; writes benchmarks/results/direct_loops.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common

LOOPS = {
    "batch1": "batch 1, fp32 (one text per call)",
    "naive32": "HF loop, batch 32 in file order, fp32",
    "st_fp32": "sentence-transformers encode, batch 32, fp32",
    "inferq_fp32": "inferq run_predictions, fp32",
    "inferq_auto": "inferq run_predictions, auto precision",
}


def _hf_model() -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer

    from inferq.shared.registry import builtin_path

    folder = str(builtin_path("minilm-l6"))
    return AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()


def _pool(hidden: Any, mask: Any) -> Any:
    import torch.nn.functional as F

    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return F.normalize((hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9), dim=1)


def _hf_loop(texts: list[str], batch: int) -> float:
    import torch

    tokenizer, model = _hf_model()
    started = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(texts), batch):
            enc = tokenizer(
                texts[i : i + batch], padding=True, truncation=True, max_length=256, return_tensors="pt"
            )
            _pool(model(**enc).last_hidden_state, enc["attention_mask"]).numpy()
    return time.perf_counter() - started


def _st_loop(texts: list[str]) -> float:
    from sentence_transformers import SentenceTransformer

    from inferq.shared.registry import builtin_path

    model = SentenceTransformer(str(builtin_path("minilm-l6")), device="cpu")
    started = time.perf_counter()
    model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    return time.perf_counter() - started


def _inferq_loop(texts: list[str], precision: str, batch_tokens: int, max_batch_size: int) -> float:
    import torch

    from inferq.shared.registry import builtin_path
    from inferq.worker.inference import run_predictions
    from inferq.worker.predictors import load_predictor

    predictor = load_predictor("embedding", builtin_path("minilm-l6"), torch.device("cpu"), common.MINILM)
    started = time.perf_counter()
    run_predictions(
        predictor, texts, {"precision": precision}, batch_tokens=batch_tokens, max_batch_size=max_batch_size
    )
    return time.perf_counter() - started


def run_one(loop: str, records: int, batch_tokens: int, max_batch_size: int) -> float:
    texts = common.texts(records)
    if loop == "batch1":
        return _hf_loop(texts, 1)
    if loop == "naive32":
        return _hf_loop(texts, 32)
    if loop == "st_fp32":
        return _st_loop(texts)
    precision = "fp32" if loop == "inferq_fp32" else "auto"
    return _inferq_loop(texts, precision, batch_tokens, max_batch_size)


def measure(
    loop: str, records: int, batch_tokens: int, max_batch_size: int, threads: int = 0
) -> dict[str, Any]:
    """One run of `loop` in a fresh process: seconds and that process's peak RSS (MiB)."""
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--threads",
            str(threads),
            "--child",
            loop,
            "--records",
            str(records),
            "--batch-tokens",
            str(batch_tokens),
            "--max-batch-size",
            str(max_batch_size),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def token_count(records: int) -> int:
    from transformers import AutoTokenizer

    from inferq.shared.registry import builtin_path

    tokenizer = AutoTokenizer.from_pretrained(str(builtin_path("minilm-l6")))
    ids = tokenizer(common.texts(records), truncation=True, max_length=256)["input_ids"]
    return sum(len(x) for x in ids)


def best_runs(
    loops: list[str], records: int, repeats: int, batch_tokens: int, max_batch_size: int, threads: int = 0
) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for loop in loops:
        runs = []
        for _ in range(repeats):
            common.wait_for_quiet(max_wait=30)
            load = common.load_note()
            run = measure(loop, records, batch_tokens, max_batch_size, threads)
            run["load"] = load
            runs.append(run)
            print(f"{loop}: {run}", file=sys.stderr)
        best = min(runs, key=lambda r: float(r["seconds"]))
        best["all_seconds"] = [round(float(r["seconds"]), 2) for r in runs]
        best["peak_rss_mib"] = max(float(r["peak_rss_mib"]) for r in runs)
        results[loop] = best
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--loops", default=",".join(LOOPS))
    parser.add_argument("--batch-tokens", type=int, default=None)
    parser.add_argument("--max-batch-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    from inferq.shared.settings import Settings
    from inferq.worker.inference import batching_for

    defaults = Settings.from_env({})
    batch_tokens, max_batch_size = batching_for(
        torch.device("cpu"),
        args.batch_tokens or defaults.batch_tokens,
        args.max_batch_size or defaults.max_batch_size,
    )
    if args.child:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        seconds = run_one(args.child, args.records, batch_tokens, max_batch_size)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"seconds": seconds, "peak_rss_mib": round(rss, 1)}))
        return 0

    tokens = token_count(args.records)
    results = best_runs(
        args.loops.split(","), args.records, args.repeats, batch_tokens, max_batch_size, args.threads
    )
    base = results.get("st_fp32")
    rows = []
    for loop, r in results.items():
        rate = args.records / float(r["seconds"])
        r["records_per_s"] = round(rate, 1)
        r["tokens_per_s"] = round(tokens / float(r["seconds"]), 0)
        vs = f"{float(base['seconds']) / float(r['seconds']):.2f}x" if base else "—"
        rows.append(
            f"| {LOOPS[loop]} | {args.records} | {r['seconds']:.2f} s (runs: {r['all_seconds']}) "
            f"| {rate:.1f} "
            f"| {tokens / float(r['seconds']):.0f} | {r['peak_rss_mib']:.0f} MiB | {vs} | {r['load']} |"
        )
    out = common.ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "direct_loops.json").write_text(
        json.dumps({"records": args.records, "tokens": tokens, "results": results}, indent=1)
    )
    common.append_results(
        "Direct loops, same texts (issue #6)",
        "| loop | records | best time | records/s | tokens/s | peak RSS | vs sentence-transformers fp32 "
        "| load before |",
        rows,
        [
            f"Texts: {common.texts_file().name} cycled to {args.records} ({tokens} tokens after "
            "truncation to 256); all-MiniLM-L6-v2; tokenization included; each loop in its own process; "
            f"best of {args.repeats}; torch threads: {args.threads or 'default (2)'}. inferq loops: "
            f"batch_tokens={batch_tokens}, max_batch_size={max_batch_size}.",
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
