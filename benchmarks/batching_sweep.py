"""Batching policy sweep (issue #6, item 4): batch_tokens x max_batch_size on real mixed-length texts.

    .venv/bin/python benchmarks/batching_sweep.py --records 2000 --precision auto

Runs `worker.inference.run_predictions` (length-sorted texts, token-budget batches capped in size) with the
built-in minilm-l6 for each combination and reports records/s and the padding ratio. The defaults in
shared/settings.py (INFERQ_BATCH_TOKENS, INFERQ_MAX_BATCH_SIZE) come from this sweep.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch-tokens", default="1024,2048,4096,8192,16384")
    parser.add_argument("--max-batch-size", default="16,32,64,128")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from inferq.shared.registry import builtin_path
    from inferq.worker.inference import run_predictions
    from inferq.worker.predictors import load_predictor

    texts = common.texts(args.records)
    predictor = load_predictor("embedding", builtin_path("minilm-l6"), torch.device("cpu"), common.MINILM)
    run_predictions(
        predictor, texts[:64], {"precision": args.precision}, batch_tokens=2048, max_batch_size=32
    )
    rows = []
    for batch_tokens in [int(x) for x in args.batch_tokens.split(",")]:
        for max_batch_size in [int(x) for x in args.max_batch_size.split(",")]:
            best = float("inf")
            stats: dict[str, object] = {}
            load = common.load_note()
            for _ in range(args.repeats):
                started = time.perf_counter()
                result = run_predictions(
                    predictor,
                    texts,
                    {"precision": args.precision},
                    batch_tokens=batch_tokens,
                    max_batch_size=max_batch_size,
                )
                best = min(best, time.perf_counter() - started)
                stats = result.stats
            row = (
                f"| {batch_tokens} | {max_batch_size} | {stats['batches']} | {stats['padding_ratio']} "
                f"| {best:.2f} s | {args.records / best:.1f} | {stats['precision']} | {load} |"
            )
            print(row, file=sys.stderr)
            rows.append(row)
    common.append_results(
        "Batching sweep: batch_tokens x max_batch_size (issue #6)",
        "| batch_tokens | max_batch_size | batches | padding ratio | time | records/s | precision "
        "| load before |",
        rows,
        [
            f"{args.records} texts of {common.texts_file().name} (cycled), minilm-l6, run_predictions, "
            f"best of {args.repeats}; torch threads {torch.get_num_threads()}."
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
