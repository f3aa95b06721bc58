"""A real embedder process (`inferq serve-embeddings`) on a free port, for tests of POST /v1/embeddings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from inferq.shared.settings import Settings
from tests.helpers.ports import free_port
from tests.helpers.worker_env import worker_env

ROOT = Path(__file__).resolve().parents[2]


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"the embedder exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"
            )
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the embedder did not answer within {timeout}s:\n{log_path.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextmanager
def running_embedder(settings: Settings, log_path: Path, **extra_env: str) -> Iterator[str]:
    """`inferq serve-embeddings` on `settings`' servers and a free port until the block ends: its URL.
    Its output goes to `log_path`."""
    url = f"http://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERQ_")}
    env.update(worker_env(settings, INFERQ_EMBEDDINGS_URL=url, **extra_env))
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "inferq.cli", "serve-embeddings"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_healthy(url, proc, log_path)
        yield url
    finally:
        stop(proc)
