"""Shared by the performance benchmarks (issue #6): the texts, the machine, and appending to RESULTS.md.

Every script prints Markdown rows and appends them to benchmarks/RESULTS.md with the date, the command,
the machine and the load average when it ran, so each figure carries what produced it.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SENTENCES = ROOT / "examples" / "data" / "sentences.jsonl"
MINILM = {"pooling": "mean", "normalize": True, "max_length": 256, "dimensions": 384}


def texts_file() -> Path:
    """The benchmark texts: INFERQ_BENCH_TEXTS (a JSONL file of {"text": ...}, e.g. the issue-like mixed set
    that benchmarks/mixed_texts.py builds), else the demo sentences. Read from the environment so that the
    child processes of a benchmark use the same set."""
    chosen = os.environ.get("INFERQ_BENCH_TEXTS")
    return Path(chosen).resolve() if chosen else SENTENCES


def texts_note() -> str:
    chosen = texts_file()
    return f"texts: {chosen.relative_to(ROOT) if chosen.is_relative_to(ROOT) else chosen}"


def base_texts() -> list[str]:
    """The texts of `texts_file()`, each once, in file order."""
    base: list[str] = []
    for line in texts_file().read_text("utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("text"), str):
            base.append(rec["text"])
    return base


def texts(n: int) -> list[str]:
    """`n` real texts (`texts_file()`), cycled."""
    base = base_texts()
    return [base[i % len(base)] for i in range(n)]


def write_jsonl(path: Path, items: list[str]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for i, text in enumerate(items):
            f.write(json.dumps({"id": f"r{i:07d}", "text": text}) + "\n")
    return path


def load1() -> float:
    return os.getloadavg()[0]


def load_note() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}/{five:.2f}/{fifteen:.2f}"


def wait_for_quiet(limit: float = 1.2, max_wait: float = 120.0) -> float:
    """Wait (at most `max_wait` s) for the 1-minute load to drop under `limit`; the load when we start."""
    deadline = time.monotonic() + max_wait
    while load1() >= limit and time.monotonic() < deadline:
        time.sleep(5)
    return load1()


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    bf16 = " (AMX-BF16: yes)" if _cpu_bf16() else " (no AMX: auto precision is fp32)"
    return (
        f"{cpu}, {os.cpu_count()} cores{bf16}, torch {torch.__version__} (threads used: see below); "
        f"{texts_note()}"
    )


def _cpu_bf16() -> bool:
    from inferq.worker.inference import cpu_has_bf16

    return cpu_has_bf16()


def command() -> str:
    python = ".venv/bin/python" if sys.prefix == str(ROOT / ".venv") else sys.executable
    return " ".join([python, *(shlex.quote(a) for a in sys.argv)])


def best_of(repeats: int, run: Callable[[], float]) -> tuple[float, list[float], list[str]]:
    """Run `repeats` times (each returns seconds); the best, all times, and the load before each run."""
    times: list[float] = []
    loads: list[str] = []
    for _ in range(repeats):
        wait_for_quiet()
        loads.append(load_note())
        times.append(run())
    return min(times), times, loads


def append_results(title: str, header: str, rows: list[str], notes: list[str] | None = None) -> None:
    """Append a dated section (command, machine, load) with a Markdown table to RESULTS.md."""
    lines = [
        "",
        f"### {title} — {date.today()}",
        "",
        f"- Command: `{command()}`",
        f"- Machine: {machine()}; load average (1/5/15 min) at the end: {load_note()}",
        *[f"- {n}" for n in notes or []],
        "",
        header,
        _rule(header),
        *rows,
        "",
    ]
    with RESULTS.open("a", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


def _rule(header: str) -> str:
    return "|" + "---|" * (header.count("|") - 1)


def fmt(value: Any, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)
