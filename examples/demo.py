"""`make demo`: start inferq, embed 1,505 sentences, download the results, search them.

Steps: a fresh data dir `.inferq/demo` and a free port; `inferq up --workers 1` as a child process;
wait for `/readyz`; `inferq keys create --tenant demo`; upload and submit
`examples/data/sentences.jsonl` as an `embedding` job on `minilm-l6`; wait with the same progress
bar as `inferq wait`; download results and errors to `demo-output/`; print what came back and the
three sentences nearest to a query, computed with numpy from the downloaded vectors. The server is
stopped with SIGINT (then SIGTERM, then SIGKILL) whatever happens. Exits non-zero on any failure.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from inferq.client import Client, ClientError, Job  # noqa: E402
from inferq.progress import ProgressBar, summarize  # noqa: E402

logger = logging.getLogger(__name__)

DATA_DIR = ROOT / ".inferq" / "demo"
OUTPUT_DIR = ROOT / "demo-output"
INPUT = ROOT / "examples" / "data" / "sentences.jsonl"
TASK = "embedding"
MODEL = "minilm-l6"
READY_TIMEOUT = 120.0
JOB_TIMEOUT = 900.0
QUEUED_TIMEOUT = 300.0  # a job no worker has started by then will not start
STOP_TIMEOUTS = {signal.SIGINT: 30.0, signal.SIGTERM: 10.0}
# The query is the first short input sentence with both words.
QUERY_WORDS = ("exception", "handler")
QUERY_MAX_WORDS = 30
NEAREST = 3


class DemoError(Exception):
    """A step of the demo failed; the message says which and why."""


class Stopped(Exception):
    """The demo got SIGTERM or SIGHUP: unwind so that the server is stopped too."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop(signum: int, frame: object) -> None:
    raise Stopped(signum)


def say(message: str) -> None:
    print(message, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


def start_server(port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "inferq.cli", "up", "--port", str(port), "--workers", "1"]
    data_dir = env.get("INFERQ_DATA_DIR", DATA_DIR)
    say(f"$ inferq up --port {port} --workers 1   (INFERQ_DATA_DIR={data_dir}, output in {log_path})")
    with log_path.open("wb") as log:
        # Its own session: a Ctrl-C in this terminal reaches the demo, which then stops it in order.
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_ready(base_url: str, proc: subprocess.Popen[bytes]) -> None:
    url = f"{base_url}/readyz"
    say(f"waiting for {url} (database, broker and storage reachable; up to {READY_TIMEOUT:.0f}s)")
    deadline = time.monotonic() + READY_TIMEOUT
    last_said = 0.0
    why = "not answering yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoError(f"inferq up exited with status {proc.returncode}")
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == 200:
                say("server is ready")
                return
            why = f"{response.status_code} {response.text.strip()[:200]}"
        except httpx.HTTPError as e:
            why = f"{type(e).__name__}: {e}"
        if time.monotonic() - last_said >= 10:
            say(f"  still waiting: {why}")
            last_said = time.monotonic()
        time.sleep(0.5)
    raise DemoError(f"{url} not ready after {READY_TIMEOUT:.0f}s ({why})")


def create_key(env: dict[str, str]) -> str:
    say("$ inferq keys create --tenant demo")
    done = subprocess.run(
        [sys.executable, "-m", "inferq.cli", "keys", "create", "--tenant", "demo"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    key = done.stdout.strip().splitlines()[-1].strip() if done.stdout.strip() else ""
    if done.returncode != 0 or not key:
        raise DemoError(f"inferq keys create failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return key


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT, then SIGTERM, then SIGKILL to its whole process group; nothing is left running."""
    pgid = proc.pid  # start_new_session made it the leader of its own group
    for sig, timeout in STOP_TIMEOUTS.items():
        if proc.poll() is not None:
            break
        say(f"stopping inferq up ({sig.name})")
        try:
            proc.send_signal(sig)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            continue
    if proc.poll() is None:
        say("stopping inferq up (SIGKILL)")
        _signal_group(pgid, signal.SIGKILL)
        proc.wait()
    # Children it left behind, if any, go the same way.
    if _group_alive(pgid):
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
    say(f"inferq up stopped (exit status {proc.returncode})")


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lines(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as f:
        return [line for line in f.read().splitlines() if line.strip()]


def input_texts(path: Path) -> dict[str, str]:
    """Id → text of every usable record of the input (broken lines are skipped here)."""
    texts: dict[str, str] = {}
    for line in read_lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("text"), str):
            texts[str(record.get("id"))] = record["text"]
    return texts


def load_embeddings(lines: list[str]) -> tuple[list[str], np.ndarray[Any, np.dtype[np.float32]]]:
    ids: list[str] = []
    vectors: list[list[float]] = []
    for line in lines:
        record = json.loads(line)
        ids.append(str(record["id"]))
        vectors.append(record["embedding"])
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:
        raise DemoError("embeddings do not all have the same dimension")
    return ids, matrix


def nearest(matrix: np.ndarray[Any, np.dtype[np.float32]], row: int, k: int) -> list[tuple[int, float]]:
    """The k rows most cosine-similar to `row`, itself excluded."""
    unit = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    scores = unit @ unit[row]
    scores[row] = -np.inf
    order = np.argsort(-scores)[:k]
    return [(int(i), float(scores[i])) for i in order]


def follow(client: Client, job: Job, what: str = "") -> Job:
    """Wait, showing progress as `inferq wait` does (epochs and metrics of train jobs); must succeed."""
    label = f" ({what})" if what else ""
    say(f"job {job.id}{label} {job.status}")
    bar = ProgressBar(sys.stderr)

    def on_progress(current: Job) -> None:
        bar.update(current)
        if current.status == "queued" and bar.elapsed > QUEUED_TIMEOUT:
            raise DemoError(f"job {current.id} still queued after {QUEUED_TIMEOUT:.0f}s: no worker took it")

    try:
        final = client.wait(job.id, poll=0.5, timeout=JOB_TIMEOUT, on_progress=on_progress)
    finally:
        bar.finish()
    say(summarize(final, bar.elapsed))
    if not final.succeeded:
        raise DemoError(f"job {final.id}{label} ended {final.status}")
    return final


def run_job(client: Client) -> Job:
    say(f"uploading {INPUT.relative_to(ROOT)} and submitting an {TASK} job on {MODEL}")
    job = client.submit_file(INPUT, task=TASK, model=MODEL, metadata={"source": "examples/demo.py"})
    return follow(client, job)


def report(client: Client, job: Job) -> None:
    results_path = client.download(job.id, OUTPUT_DIR / "embeddings.jsonl")
    errors_path = client.download(job.id, OUTPUT_DIR / "errors.jsonl", errors=True)
    results, errors = read_lines(results_path), read_lines(errors_path)
    ids, matrix = load_embeddings(results)
    say("")
    dim = matrix.shape[1]
    say(f"results: {results_path.relative_to(ROOT)}  {len(results):,} lines, embedding dimension {dim}")
    say(f"errors:  {errors_path.relative_to(ROOT)}  {len(errors):,} lines")
    if errors:
        say(f"first error line: {errors[0]}")
    total = job.progress.total
    if total is not None and len(results) + len(errors) != total:
        raise DemoError(f"{len(results)} result lines + {len(errors)} error lines != {total} records")

    texts = input_texts(INPUT)
    query_row = next((i for i, rid in enumerate(ids) if is_query(texts.get(rid, ""))), 0)
    say("")
    say(f"semantic search: the {NEAREST} sentences nearest to {ids[query_row]}")
    say(f"  query: {shorten(texts.get(ids[query_row], '?'))}")
    for row, score in nearest(matrix, query_row, NEAREST):
        say(f"  {score:.3f}  {ids[row]}  {shorten(texts.get(ids[row], '?'))}")


def is_query(text: str) -> bool:
    lowered = text.lower()
    return len(text.split()) <= QUERY_MAX_WORDS and all(word in lowered for word in QUERY_WORDS)


def shorten(text: str, width: int = 120) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def run_demo(data_dir: Path, body: Callable[[Client], None], timeout: float = 60.0) -> int:
    """Start `inferq up` in a fresh `data_dir`, make a key, run `body` with a client, then stop the server."""
    logging.basicConfig(level=logging.WARNING)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop)
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "INFERQ_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    log_path = data_dir / "up.log"
    proc = start_server(port, env, log_path)
    try:
        wait_ready(base_url, proc)
        key = create_key(env)
        with Client(base_url, key, timeout=timeout) as client:
            body(client)
        return 0
    except (DemoError, ClientError) as e:
        say(f"demo failed: {e}")
        say(f"server output ({log_path}):\n{tail(log_path)}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 128 + signal.SIGINT
    except Stopped as e:
        say(f"stopped by {e}")
        return 128 + e.signum
    finally:
        stop_server(proc)


def main() -> int:
    return run_demo(DATA_DIR, lambda client: report(client, run_job(client)))


if __name__ == "__main__":
    raise SystemExit(main())
