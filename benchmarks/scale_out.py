"""Scale-out (issue #6, item 6): two workers x one thread vs one worker x one thread on a many-part job.

    .venv/bin/python benchmarks/scale_out.py --records 3000 --part-records 250

The full distributed stack (benchmarks/stack.py). Each worker runs with INFERQ_TORCH_THREADS=1. A warm-up
job loads the model in every worker first; then the same job (submit → succeeded) runs with one worker,
and again after a second worker joins. Prints the speed-up (target ≥ 1.7x) and appends to RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
from e2e_distributed import run_job
from stack import Stack

from shared.client import Client


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--part-records", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--work-dir", type=Path, default=common.ROOT / "benchmarks" / ".work" / "scale")
    args = parser.parse_args()
    texts = common.texts(args.records)
    env = {"INFERQ_TORCH_THREADS": "1", "INFERQ_PART_RECORDS": str(args.part_records)}
    results: dict[int, tuple[float, str, int]] = {}
    with Stack(args.work_dir, extra_env=env) as stack:
        stack.serve()
        client = Client(stack.url, stack.key, timeout=600)
        file_id = client.upload(common.write_jsonl(args.work_dir / "input.jsonl", texts)).id
        warm_id = client.upload(common.write_jsonl(args.work_dir / "warm.jsonl", texts[:400])).id
        for workers in (1, 2):
            stack.worker(f"worker{workers - 1}")
            run_job(client, warm_id, {})  # every worker loads the model (parts of 100 records: 4 parts)
            best = float("inf")
            load = ""
            parts = 0
            for _ in range(args.repeats):
                common.wait_for_quiet(max_wait=30)
                load = common.load_note()
                seconds, job = run_job(client, file_id, {})
                assert job.status == "succeeded", job.raw
                parts = len([e for e in client.events(job.id) if e["kind"] == "part_done"])
                print(f"{workers} workers: {seconds:.2f}s load {load}", file=sys.stderr)
                best = min(best, seconds)
            results[workers] = (best, load, parts)
        time.sleep(0)
    one, two = results[1][0], results[2][0]
    speedup = one / two
    rows = [
        f"| {w} worker(s) x 1 thread | {args.records} | {results[w][2]} | {results[w][0]:.2f} s "
        f"| {args.records / results[w][0]:.1f} | {results[w][1]} |"
        for w in (1, 2)
    ]
    common.append_results(
        "Scale-out: 2 workers x 1 thread vs 1 worker x 1 thread (issue #6)",
        "| workers | records | parts | submit → succeeded | records/s | load before |",
        rows,
        [
            f"Full distributed stack; INFERQ_PART_RECORDS={args.part_records}; auto precision; best of "
            f"{args.repeats}. **Speed-up {speedup:.2f}x "
            f"(target ≥ 1.7x: {'met' if speedup >= 1.7 else 'NOT met'}).**"
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
