"""inferq vs its peers in ONE run, on the same records and the same two cores (issue #6, items 3a-3c).

    nice -n 0 .venv/bin/python benchmarks/peers.py --records 2000 --repeats 2 \
        --ray-python /tmp/rayenv/venv/bin/python

A quick check that leaves RESULTS.md and results/peers.json alone: `--records 200 --repeats 1
--results /tmp/peers.md --json-out /tmp/peers.json`.

The Ray venv is never a project dependency (see benchmarks/ray_data.py for the recipe):

    python3 -m venv /tmp/rayenv/venv && /tmp/rayenv/venv/bin/pip install "ray[data]==2.60.0"
    echo /work/main/.venv/lib/python3.11/site-packages \
        > /tmp/rayenv/venv/lib/python3.11/site-packages/zz.pth

Every row gets the whole machine's two cores, one after the other, on the same `--records` texts
(`common.texts`: the demo sentences, or the INFERQ_BENCH_TEXTS set, cycled, as the other benchmarks):

- Ray Data `map_batches` written the typical way (model loaded in an actor class, batch 32, records in file
  order, fp32), benchmarks/ray_data.py run with `--ray-python`, as 2 actors x 1 torch thread and as
  1 actor x 2 threads. Its rate is counted from the moment every actor has sent a batch back to the last
  batch ("steady": all actors up with their model loaded; Ray's most favourable figure) and from the
  `map_batches` call (actor start and model load included, as a user waits for it); the ratios use the
  steady rate.
- The naive in-order batched HF loop (benchmarks/direct_loops.py `naive32`: batch 32, fp32), one
  process with 2 torch threads.
- inferq end to end through the full distributed stack (benchmarks/stack.py: API, Postgres, Redis, moto
  S3, real `inferq worker` processes), submit → succeeded by the job's own timestamps, a warm-up job first
  (until every worker has run a part, so each has its model loaded), default params (automatic
  precision), as 2 workers x 1 thread and as 1 worker x 2 threads. The workers start afresh for every
  repeat.

Peak memory, sampled every 0.5 s from /proc: Ray, the summed RSS of every process its driver started
(raylet, GCS, its workers and actors, the driver itself: found by an environment tag they all inherit,
since Ray's workers leave the driver's process tree); inferq, the summed RSS of the worker processes
(each worker's main process and its prefork child) and its largest process; the naive loop, its own
peak RSS. PSS (shared pages split between the processes that map them) is reported beside it.

The best of `--repeats` counts for each row (each repeat runs every row, so a busy spell on the shared
machine hits all of them). Appends a section to benchmarks/RESULTS.md and writes
benchmarks/results/peers.json. Everything it starts (the stack, Ray's processes) is stopped on the way
out, on an error or on SIGTERM/SIGINT as well.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
import direct_loops
from e2e_distributed import check_output, server_seconds
from memory_flat import tree
from stack import Stack

from inferq.client import Client

TAG_VAR = "INFERQ_PEERS_TAG"
RAY_SCRIPT = Path(__file__).resolve().parent / "ray_data.py"
RAY_CONFIGS = ((2, 1), (1, 2))  # (actors, torch threads per actor)
INFERQ_CONFIGS = ((2, 1), (1, 2))  # (workers, torch threads per worker)


# -- memory ------------------------------------------------------------------------------------------


def _status_kib(pid: int, field_name: str, path: str = "status") -> int:
    try:
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            if line.startswith(field_name):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tagged(tag: str) -> list[int]:
    """Every process whose environment carries `TAG_VAR=tag` (inherited by all that Ray starts)."""
    needle = f"{TAG_VAR}={tag}".encode()
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


class Sampler(threading.Thread):
    """Peak summed RSS, peak summed PSS and the peak RSS of one process over `pids()`, every 0.5 s."""

    def __init__(self, pids: Callable[[], list[int]], interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.interval = interval
        self.sum_rss = 0.0
        self.sum_pss = 0.0
        self.largest = 0.0
        self.processes = 0
        self.done = threading.Event()

    def sample(self) -> None:
        pids = set(self.pids())
        rss = [_status_kib(p, "VmRSS:") / 1024 for p in pids]
        rss = [r for r in rss if r > 0]
        if not rss:
            return
        pss = sum(_status_kib(p, "Pss:", "smaps_rollup") / 1024 for p in pids)
        self.sum_rss = max(self.sum_rss, sum(rss))
        self.sum_pss = max(self.sum_pss, pss)
        self.largest = max(self.largest, max(rss))
        self.processes = max(self.processes, len(rss))

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self.done.set()
        self.join()


# -- stopping what we start --------------------------------------------------------------------------


def kill_tagged(tag: str, grace: float = 10.0) -> int:
    """SIGTERM every process carrying the tag, then SIGKILL what is left after `grace` s."""
    pids = tagged(tag)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            pids = [p for p in tagged(tag) if _status_kib(p, "VmRSS:") > 0]  # zombies hold nothing
            if not pids:
                return 0
            time.sleep(0.2)
    return len(pids)


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


# -- the rows ------------------------------------------------------------------------------------------


def run_ray(
    python: str, records: int, actors: int, threads: int, work: Path, timeout: float
) -> dict[str, Any]:
    """benchmarks/ray_data.py in a subprocess of the Ray venv; its own figures plus the tagged peak."""
    tag = uuid.uuid4().hex
    out = work / f"ray-{actors}x{threads}.json"
    out.unlink(missing_ok=True)
    log_path = work / f"ray-{actors}x{threads}.log"
    env = {**os.environ, TAG_VAR: tag, "PYTHONPATH": str(common.ROOT)}
    argv = [python, str(RAY_SCRIPT), "--records", str(records), "--actors", str(actors)]
    argv += ["--threads", str(threads), "--no-append", "--json-out", str(out)]
    sampler = Sampler(lambda: tagged(tag))
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv, env=env, cwd=common.ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    sampler.start()
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        rc = -1
    finally:
        sampler.stop()
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            proc.wait()
        left = kill_tagged(tag)
        if left:
            print(f"ray: {left} tagged process(es) would not stop", file=sys.stderr)
    if rc != 0 or not out.exists():
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"ray_data.py ({actors}x{threads}) exited {rc}:\n{tail}")
    result: dict[str, Any] = json.loads(out.read_text())
    result.update(
        peak_sum_rss_mib=round(sampler.sum_rss),
        peak_sum_pss_mib=round(sampler.sum_pss),
        peak_largest_rss_mib=round(sampler.largest),
        processes=sampler.processes,
    )
    return result


def run_naive(records: int, threads: int, batch_tokens: int, max_batch_size: int) -> dict[str, Any]:
    """direct_loops.py's `naive32` in its own process (its peak RSS is its own)."""
    return direct_loops.measure("naive32", records, batch_tokens, max_batch_size, threads)


def _parse_ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def part_timeline(events: list[dict[str, Any]], job: Any) -> dict[str, Any]:
    """Per worker: parts, busy seconds (sum of the parts' total_seconds) and its idle tail (from its last
    part's end to the last part's end); busy / (workers x job wall time) is how full the workers were."""
    start = _parse_ts(job.raw["created_at"])
    end = _parse_ts(job.raw["finished_at"])
    per: dict[str, dict[str, float]] = {}
    for e in events:
        if e["kind"] != "part_done":
            continue
        data = e["data"]
        w = per.setdefault(str(data.get("worker")), {"parts": 0, "busy": 0.0, "last": 0.0, "first": 1e18})
        done = _parse_ts(e["created_at"])
        w["parts"] += 1
        w["busy"] += float(data.get("total_seconds") or 0)
        w["last"] = max(w["last"], done)
        w["first"] = min(w["first"], done - float(data.get("total_seconds") or 0))
    if not per:
        return {}
    last = max(w["last"] for w in per.values())
    wall = end - start
    return {
        "wall": round(wall, 2),
        "fill": round(sum(w["busy"] for w in per.values()) / (len(per) * wall), 3) if wall > 0 else 0.0,
        "workers": {
            name: {
                "parts": int(w["parts"]),
                "busy_s": round(w["busy"], 2),
                "first_start_s": round(w["first"] - start, 2),
                "idle_tail_s": round(last - w["last"], 2),
            }
            for name, w in sorted(per.items())
        },
        "after_last_part_s": round(end - last, 2),
    }


def process_trees(procs: list[subprocess.Popen[bytes]]) -> list[int]:
    """The processes of `procs` and their descendants (a worker: its main process and prefork child)."""
    return [p for proc in procs for p in tree(proc.pid)]


class Stalled(RuntimeError):
    """A job made no progress for the stall window (it was cancelled)."""


STALL_SECONDS = 240.0
ENDED = ("succeeded", "failed", "cancelled", "expired")


def run_job_watched(
    client: Client, file_id: str, params: dict[str, Any], stall_seconds: float = STALL_SECONDS
) -> tuple[float, Any]:
    """As e2e_distributed.run_job (submit → end by the job's own timestamps), but a job whose completed
    count does not move for `stall_seconds` is cancelled and raises Stalled: a part left without a
    message waits for the reconciler (INFERQ_RESEND_AFTER_SECONDS, 600 s by default; the benchmark stack
    runs no beat, so for ever), and the run must not hang on it."""
    job = client.submit(task="embedding", model="minilm-l6", input_file=file_id, params=params)
    seen, changed = -1, time.monotonic()
    while True:
        current = client.get(job.id)
        if current.status in ENDED:
            return server_seconds(current.raw), current
        done = int((current.raw.get("progress") or {}).get("completed") or 0)
        if done != seen:
            seen, changed = done, time.monotonic()
        elif time.monotonic() - changed > stall_seconds:
            try:
                client.cancel(job.id)
            except Exception as e:
                print(f"could not cancel {job.id}: {e}", file=sys.stderr)
            raise Stalled(f"job {job.id} stalled at {done} records for {stall_seconds:.0f} s")
        time.sleep(0.5)


def warm_up(client: Client, warm_id: str, workers: int, stall_seconds: float = STALL_SECONDS) -> None:
    """Run the warm-up job until `workers` distinct workers have run a part of it (at most 4 times), so
    every worker has its model loaded."""
    ran: set[Any] = set()
    for _ in range(4):
        _, warm = run_job_watched(client, warm_id, {}, stall_seconds)
        assert warm.status == "succeeded", warm.raw
        ran = {e["data"].get("worker") for e in client.events(warm.id) if e["kind"] == "part_done"}
        if len(ran) >= workers:
            return
    print(f"warning: only {len(ran)} of {workers} workers ran a warm-up part", file=sys.stderr)


@dataclass
class InferqRun:
    seconds: float
    job: Any
    load: str
    sum_rss: float
    sum_pss: float
    largest: float
    processes: int
    timeline: dict[str, Any]
    stalls: list[str]


def run_inferq(
    stack: Stack,
    client: Client,
    file_id: str,
    warm_id: str,
    workers: int,
    threads: int,
    run_no: int,
    quiet: float,
    stall_seconds: float = STALL_SECONDS,
) -> InferqRun:
    """Start `workers` fresh workers with `threads` torch threads, warm them, time one job, stop them.
    A stalled job (see run_job_watched) is noted and the whole try (fresh workers) made again, 3 at most."""
    env = {"INFERQ_TORCH_THREADS": str(threads)}
    stalls: list[str] = []
    for attempt in range(3):
        names = [f"w{workers}x{threads}-r{run_no}-a{attempt}-{i}" for i in range(workers)]
        procs: list[subprocess.Popen[bytes]] = []
        sampler = Sampler(functools.partial(process_trees, procs))
        try:
            for name in names:
                procs.append(stack.worker(name, env))
            sampler.start()
            warm_up(client, warm_id, workers, stall_seconds)
            common.wait_for_quiet(max_wait=quiet)
            load = common.load_note()
            seconds, job = run_job_watched(client, file_id, {}, stall_seconds)
            assert job.status == "succeeded", job.raw
            timeline = part_timeline(client.events(job.id), job)
        except Stalled as e:
            print(f"inferq {workers}x{threads}: {e}; trying again with fresh workers", file=sys.stderr)
            stalls.append(str(e))
            continue
        finally:
            if sampler.is_alive():
                sampler.stop()
            for name in names:
                stack.stop(name)
        return InferqRun(
            seconds,
            job,
            load,
            sampler.sum_rss,
            sampler.sum_pss,
            sampler.largest,
            sampler.processes,
            timeline,
            stalls,
        )
    raise RuntimeError(f"inferq {workers}x{threads}: 3 stalled tries: {stalls}")


# -- main ------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--ray-python", default="/tmp/rayenv/venv/bin/python", help="python of the Ray venv")
    parser.add_argument("--ray-timeout", type=float, default=900.0, help="seconds for one Ray run")
    parser.add_argument(
        "--stall-seconds", type=float, default=STALL_SECONDS, help="cancel and retry a job stuck this long"
    )
    parser.add_argument("--quiet-wait", type=float, default=30.0, help="wait at most this for load < 1.2")
    parser.add_argument("--work-dir", type=Path, default=common.ROOT / "benchmarks" / ".work" / "peers")
    parser.add_argument(
        "--results", type=Path, default=common.RESULTS, help="the Markdown file to append to (smoke runs)"
    )
    parser.add_argument(
        "--json-out", type=Path, default=common.ROOT / "benchmarks" / "results" / "peers.json"
    )
    parser.add_argument("--skip", default="", help="rows to leave out: ray,naive,inferq (for a quick check)")
    args = parser.parse_args()
    skip = {s for s in args.skip.split(",") if s}
    common.RESULTS = args.results
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGHUP, _raise_exit)
    if "ray" not in skip and not Path(args.ray_python).exists():
        parser.error(f"--ray-python {args.ray_python} does not exist (see the docstring for the recipe)")
    import torch

    from inferq.shared.settings import Settings
    from inferq.worker.inference import batching_for

    defaults = Settings.from_env({})
    batch_tokens, max_batch_size = batching_for(
        torch.device("cpu"), defaults.batch_tokens, defaults.max_batch_size
    )
    args.work_dir.mkdir(parents=True, exist_ok=True)
    texts = common.texts(args.records)
    tokens = direct_loops.token_count(args.records)
    cores = os.cpu_count() or 2

    ray_runs: dict[tuple[int, int], list[dict[str, Any]]] = {c: [] for c in RAY_CONFIGS}
    naive_runs: list[dict[str, Any]] = []
    inferq_runs: dict[tuple[int, int], list[InferqRun]] = {c: [] for c in INFERQ_CONFIGS}
    with Stack(args.work_dir / "stack") as stack:  # stops everything it started, also on an error
        stack.serve()
        client = Client(stack.url, stack.key, timeout=600)
        file_id = client.upload(common.write_jsonl(args.work_dir / "input.jsonl", texts)).id
        warm_id = client.upload(common.write_jsonl(args.work_dir / "warm.jsonl", texts[:400])).id
        for repeat in range(args.repeats):
            if "ray" not in skip:
                for actors, threads in RAY_CONFIGS:
                    common.wait_for_quiet(max_wait=args.quiet_wait)
                    load = common.load_note()
                    r = run_ray(
                        args.ray_python, args.records, actors, threads, args.work_dir, args.ray_timeout
                    )
                    r["load"] = load
                    ray_runs[(actors, threads)].append(r)
                    print(f"ray {actors}x{threads}: {r}", file=sys.stderr)
            if "naive" not in skip:
                common.wait_for_quiet(max_wait=args.quiet_wait)
                load = common.load_note()
                n = run_naive(args.records, cores, batch_tokens, max_batch_size)
                n["load"] = load
                naive_runs.append(n)
                print(f"naive: {n}", file=sys.stderr)
            if "inferq" not in skip:
                for workers, threads in INFERQ_CONFIGS:
                    i = run_inferq(
                        stack,
                        client,
                        file_id,
                        warm_id,
                        workers,
                        threads,
                        repeat,
                        args.quiet_wait,
                        args.stall_seconds,
                    )
                    inferq_runs[(workers, threads)].append(i)
                    print(
                        f"inferq {workers}x{threads}: {i.seconds:.2f}s load {i.load} rss {i.sum_rss:.0f} "
                        f"timeline {json.dumps(i.timeline)}",
                        file=sys.stderr,
                    )
        checks: dict[tuple[int, int], tuple[bool, float]] = {}
        for config, runs in inferq_runs.items():
            if runs:
                best = min(runs, key=lambda r: r.seconds)
                checks[config] = check_output(client, best.job.id, texts, args.work_dir)
    report(args, tokens, ray_runs, naive_runs, inferq_runs, checks)
    return 0


def report(
    args: argparse.Namespace,
    tokens: int,
    ray_runs: dict[tuple[int, int], list[dict[str, Any]]],
    naive_runs: list[dict[str, Any]],
    inferq_runs: dict[tuple[int, int], list[InferqRun]],
    checks: dict[tuple[int, int], tuple[bool, float]],
) -> None:
    n = args.records
    rows: list[str] = []
    saved: dict[str, Any] = {"records": n, "tokens": tokens, "repeats": args.repeats}
    ray_best: dict[tuple[int, int], dict[str, Any]] = {}
    for (actors, threads), runs in ray_runs.items():
        if not runs:
            continue
        best = max(runs, key=lambda r: float(r["steady_records_per_s"]))
        ray_best[(actors, threads)] = best
        steady = float(best["steady_records_per_s"])

        def most(key: str, runs: list[dict[str, Any]] = runs) -> int:  # memory: the largest of the runs
            return max(int(r[key]) for r in runs)

        rows.append(
            f"| Ray Data {best['ray_version']} map_batches, {actors} actor(s) x {threads} thread(s), "
            f"batch 32, file order, fp32 | {steady:.1f} (steady) / {float(best['records_per_s']):.1f} "
            "(from map_batches) "
            f"| {tokens * steady / n:.0f} | {most('peak_sum_rss_mib')} MiB ({most('processes')} processes; "
            f"PSS {most('peak_sum_pss_mib')} MiB) | {most('peak_largest_rss_mib')} MiB "
            f"| {[r['steady_records_per_s'] for r in runs]} | {best['load']} |"
        )
        saved[f"ray_{actors}x{threads}"] = runs
    naive_rate = 0.0
    if naive_runs:
        best_naive = min(naive_runs, key=lambda r: float(r["seconds"]))
        naive_rate = n / float(best_naive["seconds"])
        rows.append(
            f"| naive HF loop, batch 32 in file order, fp32, 1 process x {os.cpu_count()} threads "
            f"| {naive_rate:.1f} | {tokens / float(best_naive['seconds']):.0f} "
            f"| {max(float(r['peak_rss_mib']) for r in naive_runs):.0f} MiB (1 process) | — "
            f"| {[round(n / float(r['seconds']), 1) for r in naive_runs]} | {best_naive['load']} |"
        )
        saved["naive"] = naive_runs
    inferq_best: dict[tuple[int, int], InferqRun] = {}
    for (workers, threads), iruns in inferq_runs.items():
        if not iruns:
            continue
        best_i = min(iruns, key=lambda r: r.seconds)
        inferq_best[(workers, threads)] = best_i
        rows.append(
            f"| inferq end to end (API+Postgres+Redis+moto S3), {workers} worker(s) x {threads} thread(s), "
            f"submit → succeeded | {n / best_i.seconds:.1f} | {tokens / best_i.seconds:.0f} "
            f"| {max(r.sum_rss for r in iruns):.0f} MiB ({max(r.processes for r in iruns)} processes; PSS "
            f"{max(r.sum_pss for r in iruns):.0f} MiB) | {max(r.largest for r in iruns):.0f} MiB "
            f"| {[round(n / r.seconds, 1) for r in iruns]} | {best_i.load} |"
        )
        saved[f"inferq_{workers}x{threads}"] = [
            {
                "seconds": r.seconds,
                "records_per_s": round(n / r.seconds, 1),
                "load": r.load,
                "peak_sum_rss_mib": round(r.sum_rss),
                "peak_sum_pss_mib": round(r.sum_pss),
                "peak_largest_rss_mib": round(r.largest),
                "timeline": r.timeline,
                "stalls": r.stalls,
                "metrics": r.job.raw.get("metrics"),
            }
            for r in iruns
        ]
    notes = [
        f"{n} records ({tokens} tokens after truncation to 256): {common.texts_file().name} cycled, "
        f"the same texts for every row, all-MiniLM-L6-v2, mean-pooled and normalized; every row on the same "
        f"{os.cpu_count()} cores, one after another in this one run; best of {args.repeats} per row (each "
        f"repeat runs every row); niceness {os.nice(0)}; the load before each row's best run is in the "
        "table (a 1-minute load above ~1.2 means other work shared the two cores).",
        "Ray: benchmarks/ray_data.py from a separate venv (ray[data], never a project dependency); "
        "'steady' counts from the moment every actor has sent a batch back to the last batch (all actors "
        "up, model loaded: Ray's best figure, used for the ratios), 'from map_batches' includes starting "
        "the actors and loading the model. Peak memory: summed RSS of every process the Ray driver "
        "started (raylet, GCS, idle workers, actors, driver). inferq: default params (automatic precision: "
        + ", ".join(
            sorted(
                {
                    str((r.job.raw.get("metrics") or {}).get("precision"))
                    for rs in inferq_runs.values()
                    for r in rs
                }
            )
        )
        + " here), fresh workers each repeat, a warm-up job first; peak memory: summed RSS of the worker "
        "processes (main + prefork child each), the API, moto, Postgres and Redis not counted.",
    ]
    stalls = [x for runs in inferq_runs.values() for r in runs for x in r.stalls]
    if stalls:
        notes.append(
            f"{len(stalls)} inferq job(s) stalled (no progress for {args.stall_seconds:.0f} s: a part left "
            "without a message, which waits for the reconciler) and were cancelled and run again with "
            f"fresh workers: {'; '.join(stalls)}."
        )
    for (workers, threads), (in_order, min_cos) in checks.items():
        notes.append(
            f"inferq {workers}x{threads} best job: output {n} lines in input order: {in_order}; "
            f"min cosine to fp32 (first 200): {min_cos:.6f}."
        )
    for (workers, threads), best_i in inferq_best.items():
        tl = best_i.timeline
        if tl:
            per = "; ".join(
                f"{w['parts']} parts, busy {w['busy_s']} s, first part started at {w['first_start_s']} s, "
                f"idle tail {w['idle_tail_s']} s"
                for w in tl["workers"].values()
            )
            notes.append(
                f"inferq {workers}x{threads} best job, where the time went: wall {tl['wall']} s; per worker: "
                f"{per}; after the last part: {tl['after_last_part_s']} s (finalize); workers busy "
                f"{tl['fill'] * 100:.0f}% of the wall time."
            )
    if ray_best and inferq_best:
        (rc, rb) = max(ray_best.items(), key=lambda kv: float(kv[1]["steady_records_per_s"]))
        (ic, ib) = min(inferq_best.items(), key=lambda kv: kv[1].seconds)
        ray_rate = float(rb["steady_records_per_s"])
        ray_start_rate = float(rb["records_per_s"])
        inferq_rate = n / ib.seconds
        vs_ray = inferq_rate / ray_rate
        inferq_rss = max(r.sum_rss for r in inferq_runs[ic])
        ray_rss = float(max(r["peak_sum_rss_mib"] for r in ray_runs[rc]))
        per_config = ", ".join(
            f"{w}x{t}: {n / b.seconds / ray_rate:.2f}x" for (w, t), b in inferq_best.items()
        )
        notes.append(
            f"**inferq / Ray Data = {vs_ray:.2f}x** (inferq {ic[0]} worker(s) x {ic[1]} thread(s) "
            f"{inferq_rate:.1f} records/s vs Ray {rc[0]} actor(s) x {rc[1]} thread(s) {ray_rate:.1f} steady; "
            f"target ≥ 5x: {'met' if vs_ray >= 5 else 'NOT met'}); each inferq configuration vs Ray's best: "
            f"{per_config}; against Ray's rate from the map_batches call ({ray_start_rate:.1f}): "
            f"{inferq_rate / ray_start_rate:.2f}x. **Peak memory: inferq {inferq_rss:.0f} MiB vs Ray "
            f"{ray_rss:.0f} MiB (summed RSS; {'less' if inferq_rss < ray_rss else 'NOT less'}).**"
        )
        saved["ratio_vs_ray"] = round(vs_ray, 3)
    if naive_rate and inferq_best:
        ib = min(inferq_best.values(), key=lambda r: r.seconds)
        vs_naive = n / ib.seconds / naive_rate
        notes.append(
            f"**inferq / naive HF loop = {vs_naive:.2f}x** "
            f"(target ≥ 3x: {'met' if vs_naive >= 3 else 'NOT met'})."
        )
        saved["ratio_vs_naive"] = round(vs_naive, 3)
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(saved, indent=1, default=str))
    common.append_results(
        "Peers in one run: inferq vs Ray Data vs the naive loop, same records, same 2 cores (issue #6)",
        "| what | records/s | tokens/s | peak memory (summed RSS) | largest process | runs (records/s) "
        "| load before (best) |",
        rows,
        notes,
    )


if __name__ == "__main__":
    sys.exit(main())
