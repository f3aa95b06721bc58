"""Latency of the synchronous `POST /v1/embeddings` (issue 13, item 3), on the embedded default stack.

    git worktree add --detach /tmp/inferq-before <commit before the change>
    .venv/bin/python benchmarks/embeddings_latency.py --code before=/tmp/inferq-before --code after=.

For each `--code LABEL=CHECKOUT` it starts `inferq up --workers 1` running that checkout's code, on a
fresh data folder (SQLite, storage folder, filesystem broker), makes a key and warms the model up. Then
it times `--requests` requests of 1 input and of 32 inputs from one client (one request at a time), and
the 1-input requests again from `--clients` clients at once (the load the embedder's micro-batching is
for). The stacks run side by side and take chunks of requests in turn, so that on a machine shared with
other work both meet the same load. Reports p50/p99 in milliseconds and appends them to RESULTS.md.
The texts are the demo sentences (benchmarks/common.py); every request embeds texts it has not seen.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
from stack import free_port


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def cli(args: list[str], env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "inferq.cli", *args], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout


def wait_embeddings(http: httpx.Client, timeout: float = 180) -> None:
    """Until an embeddings request answers 200 (the API is up and the model is loaded)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            r = http.post("/v1/embeddings", json={"model": "minilm-l6", "input": "warm up"})
            if r.status_code == 200:
                return
            last = r.text
        except httpx.HTTPError as e:
            last = str(e)
        time.sleep(0.5)
    raise RuntimeError(f"embeddings not served within {timeout}s: {last}")


def timed(http: httpx.Client, texts: list[str]) -> float:
    started = time.perf_counter()
    r = http.post("/v1/embeddings", json={"model": "minilm-l6", "input": texts})
    elapsed = time.perf_counter() - started
    r.raise_for_status()
    assert len(r.json()["data"]) == len(texts)
    return elapsed * 1000


def run_series(url: str, key: str, inputs: int, requests: int, clients: int, pool: list[str]) -> list[float]:
    def one_client(c: int) -> list[float]:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            out = []
            for i in range(c, requests, clients):
                start = (i * inputs) % len(pool)
                out.append(timed(http, [pool[(start + j) % len(pool)] for j in range(inputs)]))
            return out

    with ThreadPoolExecutor(clients) as ex:
        return [ms for part in ex.map(one_client, range(clients)) for ms in part]


class Up:
    """`inferq up --workers 1` on a fresh data folder, running the code at `pythonpath` (a checkout)."""

    def __init__(self, label: str, pythonpath: str) -> None:
        self.label = label
        self.work = Path(tempfile.mkdtemp(prefix=f"inferq-embed-bench-{label}-"))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("INFERQ_")}
        self.env.update(
            PYTHONPATH=pythonpath, INFERQ_DATA_DIR=str(self.work / "data"), INFERQ_RATE_LIMIT_PER_MINUTE="0"
        )
        port = self.url.rsplit(":", 1)[1]
        with (self.work / "up.log").open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "inferq.cli", "up", "--port", port, "--workers", "1"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.key = ""

    def wait(self) -> None:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError((self.work / "up.log").read_text(errors="replace")[-3000:])
            time.sleep(0.5)
        self.key = cli(["keys", "create", "--tenant", "bench"], self.env).strip()
        with httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=60
        ) as h:
            wait_embeddings(h)

    def close(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        shutil.rmtree(self.work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--code",
        action="append",
        required=True,
        help="LABEL=CHECKOUT: a stack runs that checkout's code (give two to compare them)",
    )
    parser.add_argument("--requests", type=int, default=100, help="per series and stack")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=10, help="requests in a row to one stack")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    stacks = [Up(*item.split("=", 1)) for item in args.code]
    rows = []
    try:
        for stack in stacks:
            stack.wait()
        pool = common.texts(4096)
        for inputs, clients in ((1, 1), (32, 1), (1, args.clients)):
            times: dict[str, list[float]] = {s.label: [] for s in stacks}
            walls: dict[str, float] = {s.label: 0.0 for s in stacks}
            for stack in stacks:
                run_series(stack.url, stack.key, inputs, 10, clients, pool[::-1])  # warm-up, other texts
            loads = [common.load_note()]
            # Chunks of requests go to the stacks in turn: both meet the same load from the rest of
            # the machine (other processes share its cores), and every request embeds new texts.
            for chunk in range(0, args.requests, args.chunk):
                for stack in stacks:
                    offset = chunk * inputs * clients
                    texts = pool[offset % len(pool) :] + pool[: offset % len(pool)]
                    started = time.perf_counter()
                    times[stack.label] += run_series(stack.url, stack.key, inputs, args.chunk, clients, texts)
                    walls[stack.label] += time.perf_counter() - started
            loads.append(common.load_note())
            for stack in stacks:
                ms = times[stack.label]
                rows.append(
                    f"| {stack.label} | {inputs} | {clients} | {len(ms)} | {percentile(ms, 50):.1f} | "
                    f"{percentile(ms, 99):.1f} | {statistics.mean(ms):.1f} | "
                    f"{len(ms) / walls[stack.label]:.1f} | {' → '.join(loads)} |"
                )
                print(rows[-1], flush=True)
    finally:
        for stack in stacks:
            stack.close()
    header = "| code | inputs | clients | requests | p50 ms | p99 ms | mean ms | requests/s | load 1/5/15 |"
    if args.no_append:
        print(header, *rows, sep="\n")
    else:
        common.append_results(
            "Synchronous embeddings latency: " + " vs ".join(s.label for s in stacks),
            header,
            rows,
            notes=[
                "each stack: `inferq up --workers 1` (SQLite, storage folder, filesystem broker), both up "
                "at once; chunks of requests alternate between them",
                *[f"{item}" for item in args.code],
            ],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
