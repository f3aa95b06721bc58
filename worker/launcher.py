"""`inferq worker --gpus …`: one worker process per visible GPU, each pinned with CUDA_VISIBLE_DEVICES.

The parent never imports CUDA: it counts GPUs with nvidia-smi (or INFERQ_GPU_COUNT, for tests and for
hosts where nvidia-smi is missing), starts the children, restarts one that dies, and passes on signals.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from types import FrameType

log = logging.getLogger(__name__)


def detect_gpu_count(env: Mapping[str, str]) -> int:
    injected = env.get("INFERQ_GPU_COUNT")
    if injected:
        return int(injected)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "--list-gpus"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def gpu_ids(spec: str, count: int) -> list[str]:
    """`all` → every GPU, `none` → [], `0,2` → those (checked against the count)."""
    spec = spec.strip().lower()
    if spec in ("none", "", "cpu"):
        return []
    if spec == "all":
        return [str(i) for i in range(count)]
    ids = [s.strip() for s in spec.split(",") if s.strip()]
    for i in ids:
        if not i.isdigit() or int(i) >= count:
            raise ValueError(f"GPU {i!r} does not exist here ({count} visible)")
    return ids


def child_envs(gpus: Sequence[str], base: Mapping[str, str]) -> list[dict[str, str]]:
    envs = []
    for index, gpu in enumerate(gpus):
        env = dict(base)
        env["CUDA_VISIBLE_DEVICES"] = gpu
        env["INFERQ_WORKER_GPU"] = gpu
        env["INFERQ_WORKER_INDEX"] = str(index)  # its metrics port: INFERQ_WORKER_METRICS_PORT + index
        envs.append(env)
    return envs


def child_command(queues: str, name: str, beat: bool, concurrency: int = 1) -> list[str]:
    """One GPU's worker. `concurrency` > 1 runs that many pool processes on the GPU, each with its own
    copy of the model: while one process reads, tokenizes or writes a part, another keeps the GPU busy."""
    cmd = [sys.executable, "-m", "inferq.cli", "worker", "--gpus", "none", "--queues", queues, "--name", name]
    cmd += ["--concurrency", str(concurrency)]
    if beat:
        cmd.append("--beat")
    return cmd


class Supervisor:
    """Runs child processes until told to stop; a child that dies is started again after a pause."""

    def __init__(self, commands: list[tuple[list[str], dict[str, str]]], restart: bool = True) -> None:
        self.commands = commands
        self.restart = restart
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * len(commands)
        self.stopping = False

    def _start(self, i: int) -> None:
        cmd, env = self.commands[i]
        self.procs[i] = subprocess.Popen(cmd, env=env)
        log.info("started %s (pid %d)", " ".join(cmd[3:]), self.procs[i].pid)  # type: ignore[union-attr]

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.send_signal(signum)

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            return self._supervise()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _supervise(self) -> int:
        for i in range(len(self.commands)):
            self._start(i)
        while True:
            alive = False
            for i, p in enumerate(self.procs):
                if p is None:
                    continue
                code = p.poll()
                if code is None:
                    alive = True
                elif not self.stopping and self.restart:
                    log.warning("child %d exited with %s; restarting", p.pid, code)
                    time.sleep(1)
                    self._start(i)
                    alive = True
                else:
                    self.procs[i] = None
            if not alive:
                return 0
            if self.stopping:
                self._wait_all(timeout=60)
                return 0
            time.sleep(0.5)

    def _wait_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for p in self.procs:
            if p is None:
                continue
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def launch_gpu_workers(gpus: Sequence[str], queues: str, name: str, beat: bool, concurrency: int = 1) -> int:
    envs = child_envs(gpus, os.environ)
    commands = [
        (child_command(queues, f"{name}-gpu{gpu}", beat and i == 0, concurrency), env)
        for i, (gpu, env) in enumerate(zip(gpus, envs, strict=True))
    ]
    return Supervisor(commands).run()
