"""Scale-out (issue #6, item 6): two workers x one thread vs one worker x one thread on a many-part job.

    .venv/bin/python benchmarks/scale_out.py --records 3000 --part-records 250 --repeats 2

The full distributed stack (benchmarks/stack.py). Each worker runs with INFERQ_TORCH_THREADS=1. A warm-up
job runs until every worker has run a part of it (so each has its model loaded); then the same job
(submit → succeeded) runs with one worker, and again after a second worker joins. Prints the speed-up
(target ≥ 1.7x) and, from the job's `part_done` events, where each worker's time went (parts, busy
seconds, the idle tail after its last part, the time before the first part and after the last), and
appends to RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
from peers import Stalled, part_timeline, run_job_watched, warm_up
from stack import Stack

from inferq.client import Client


def describe(timeline: dict[str, Any]) -> str:
    per = "; ".join(
        f"{w['parts']} parts, busy {w['busy_s']} s, idle tail {w['idle_tail_s']} s"
        for w in timeline["workers"].values()
    )
    first = min(w["first_start_s"] for w in timeline["workers"].values())
    return (
        f"wall {timeline['wall']} s, first part started at {first} s, after the last part "
        f"{timeline['after_last_part_s']} s; per worker: {per}; workers busy {timeline['fill'] * 100:.0f}%"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--part-records", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--work-dir", type=Path, default=common.ROOT / "benchmarks" / ".work" / "scale")
    args = parser.parse_args()
    texts = common.texts(args.records)
    env = {"INFERQ_TORCH_THREADS": "1", "INFERQ_PART_RECORDS": str(args.part_records)}
    results: dict[int, tuple[float, str, int, dict[str, Any]]] = {}
    stalls: list[str] = []
    with Stack(args.work_dir, extra_env=env) as stack:
        stack.serve()
        client = Client(stack.url, stack.key, timeout=600)
        file_id = client.upload(common.write_jsonl(args.work_dir / "input.jsonl", texts)).id
        warm_id = client.upload(common.write_jsonl(args.work_dir / "warm.jsonl", texts[:400])).id
        for workers in (1, 2):
            stack.worker(f"worker{workers - 1}")
            warm_up(client, warm_id, workers)
            runs: list[tuple[float, str, int, dict[str, Any]]] = []
            for _ in range(args.repeats):
                common.wait_for_quiet(max_wait=30)
                load = common.load_note()
                try:
                    seconds, job = run_job_watched(client, file_id, {})
                except Stalled as e:  # a part left without a message (see peers.run_job_watched)
                    print(f"{workers} workers: {e}", file=sys.stderr)
                    stalls.append(str(e))
                    seconds, job = run_job_watched(client, file_id, {})
                assert job.status == "succeeded", job.raw
                events = client.events(job.id)
                parts = len([e for e in events if e["kind"] == "part_done"])
                timeline = part_timeline(events, job)
                print(
                    f"{workers} workers: {seconds:.2f}s load {load} {json.dumps(timeline)}", file=sys.stderr
                )
                runs.append((seconds, load, parts, timeline))
            results[workers] = min(runs, key=lambda r: r[0])
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
            f"(target ≥ 1.7x: {'met' if speedup >= 1.7 else 'NOT met'}).**",
            *(
                f"{w} worker(s), best job, from its part_done events: {describe(results[w][3])}."
                for w in (1, 2)
            ),
            *([f"Stalled jobs (cancelled and run again): {'; '.join(stalls)}."] if stalls else []),
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
