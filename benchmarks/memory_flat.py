"""Worker memory is flat in job size (issue #6, item 5): peak RSS for a small vs a large job.

    .venv/bin/python benchmarks/memory_flat.py --small 10000 --large 100000

The full distributed stack (benchmarks/stack.py). For each job size a FRESH worker starts (so the peak
is that job's), runs a warm-up job of 100 records, then the job; the peak RSS (VmHWM) of every process of
the worker (its main process and its prefork pool child) is sampled every 0.5 s from /proc, and the
largest is reported. Target: large / small < 1.2.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
from e2e_distributed import run_job
from stack import Stack

from shared.client import Client


def tree(pid: int) -> list[int]:
    """`pid` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def hwm_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class PeakSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            for p in tree(self.pid):
                self.peak = max(self.peak, hwm_mib(p))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=1, help="the worker's torch threads")
    parser.add_argument("--work-dir", type=Path, default=common.ROOT / "benchmarks" / ".work" / "memory")
    args = parser.parse_args()
    rows = []
    peaks: dict[int, float] = {}
    with Stack(args.work_dir, extra_env={"INFERQ_TORCH_THREADS": str(args.threads)}) as stack:
        stack.serve()
        client = Client(stack.url, stack.key, timeout=3600)
        warm_id = client.upload(common.write_jsonl(args.work_dir / "warm.jsonl", common.texts(100))).id
        for n, size in enumerate((args.small, args.large)):
            file_id = client.upload(
                common.write_jsonl(args.work_dir / f"in{size}.jsonl", common.texts(size))
            ).id
            proc = stack.worker(f"worker{n}")
            sampler = PeakSampler(proc.pid)
            sampler.start()
            run_job(client, warm_id, {})
            load = common.load_note()
            seconds, job = run_job(client, file_id, {})
            sampler.done.set()
            sampler.join()
            for p in tree(proc.pid):
                sampler.peak = max(sampler.peak, hwm_mib(p))
            assert job.status == "succeeded", job.raw
            stack.stop(f"worker{n}")
            peaks[size] = sampler.peak
            parts = len([e for e in client.events(job.id) if e["kind"] == "part_done"])
            rows.append(
                f"| {size} | {parts} | {seconds:.1f} s "
                f"| {size / seconds:.1f} | {sampler.peak:.0f} MiB | {load} |"
            )
            print(rows[-1], file=sys.stderr)
    ratio = peaks[args.large] / peaks[args.small]
    common.append_results(
        "Worker peak RSS vs job size (issue #6)",
        "| records | parts | submit → succeeded | records/s | worker peak RSS (largest process) "
        "| load before |",
        rows,
        [
            "A fresh worker per job size; VmHWM of the worker's processes sampled every 0.5 s. "
            f"**large/small = "
            f"{ratio:.2f} (target < 1.2: {'met' if ratio < 1.2 else 'NOT met'}).**"
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
