"""End-to-end embedding job on the embedded stack: N records through `inferq up`, checked line by line.

    .venv/bin/python benchmarks/e2e_job.py --records 100000 --workers 2

Builds an input of real sentences (the demo data, cycled with unique ids), starts `inferq up` in a
fresh data dir, submits an embedding job on minilm-l6, waits, downloads, and checks that the output has
exactly one line per record, in input order. Prints one Markdown row for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import common  # noqa: E402  (benchmarks/, this script's folder)

from inferq.client import Client  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedStack:
    """`inferq up` (SQLite, a storage folder, the filesystem broker) in a fresh data dir under `work`, with
    a tenant key; stopped with everything it started on exit. Also used by benchmarks/gpu_run.py."""

    def __init__(self, work: Path, workers: int, extra_env: dict[str, str] | None = None) -> None:
        self.work = work
        self.workers = workers
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("INFERQ_")}
        self.env["INFERQ_DATA_DIR"] = str(work / "data")
        self.env.update(extra_env or {})
        self.url = ""
        self.key = ""
        self.up: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> EmbeddedStack:
        shutil.rmtree(self.work / "data", ignore_errors=True)
        self.work.mkdir(parents=True, exist_ok=True)
        port = free_port()
        cmd = [sys.executable, "-m", "inferq.cli", "up", "--port", str(port), "--workers", str(self.workers)]
        log = (self.work / "up.log").open("wb")
        self.up = subprocess.Popen(
            cmd, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.url = f"http://127.0.0.1:{port}"
        for _ in range(240):
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.key = subprocess.run(
            [sys.executable, "-m", "inferq.cli", "keys", "create", "--tenant", "bench"],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return self

    def __exit__(self, *_: object) -> None:
        if self.up is None:
            return
        os.killpg(self.up.pid, signal.SIGINT)
        try:
            self.up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.up.pid, signal.SIGKILL)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work-dir", type=Path, default=ROOT / "benchmarks" / ".work")
    args = parser.parse_args()

    work = args.work_dir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    input_path = work / "input.jsonl"
    common.write_jsonl(input_path, common.texts(args.records))
    with EmbeddedStack(work, args.workers) as stack:
        client = Client(stack.url, stack.key, timeout=600)
        started = time.perf_counter()
        job = client.submit_file(input_path, task="embedding", model="minilm-l6")
        final = client.wait(job.id, poll=2.0)
        elapsed = time.perf_counter() - started
        out = client.download(job.id, work / "output.jsonl")
        ids = []
        with out.open("rb") as f:
            for line in f:
                ids.append(json.loads(line)["id"])
        in_order = ids == [f"r{i:07d}" for i in range(args.records)]
        print(
            f"status={final.status} lines={len(ids)} in_order={in_order} seconds={elapsed:.1f} "
            f"records_per_s={args.records / elapsed:.1f}"
        )
        print(
            f"| {date.today()} | e2e embedding job, embedded stack, {args.workers} workers "
            f"| {args.records} | {len(ids)} | {in_order} | {elapsed:.1f} s | {args.records / elapsed:.1f} "
            f"| {platform.processor() or platform.machine()}, {os.cpu_count()} cores |"
        )
        return 0 if final.status == "succeeded" and in_order and len(ids) == args.records else 1


if __name__ == "__main__":
    sys.exit(main())
