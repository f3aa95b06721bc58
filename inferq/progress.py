"""Progress of a job on a terminal: `inferq wait`, `inferq submit --wait` and the demo share it.

The formatting functions are pure (numbers in, one line out); `ProgressBar` decides when to draw:
in place on a terminal, or one line every few seconds when stderr is a file or a pipe.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

from inferq.client import Job

BAR_WIDTH = 24
RATE_WINDOW_SECONDS = 30.0
LOG_INTERVAL_SECONDS = 5.0


def format_duration(seconds: float | None) -> str:
    """`0:07`, `12:34`, `1:02:03`; `--:--` when unknown."""
    if seconds is None or seconds < 0 or seconds != seconds or seconds == float("inf"):
        return "--:--"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_rate(rate: float | None) -> str:
    """Records per second: `85.3 rec/s`, `1,234 rec/s`; `-- rec/s` when unknown."""
    if rate is None:
        return "-- rec/s"
    if rate >= 100:
        return f"{rate:,.0f} rec/s"
    return f"{rate:.1f} rec/s"


def eta_seconds(done: int, total: int | None, rate: float | None) -> float | None:
    """Seconds left at `rate`; None when the total or a positive rate is unknown."""
    if total is None:
        return None
    remaining = max(0, total - done)
    if remaining == 0:
        return 0.0
    if not rate or rate <= 0:
        return None
    return remaining / rate


def render_progress(
    *,
    status: str,
    completed: int,
    failed: int,
    total: int | None,
    rate: float | None,
    width: int = BAR_WIDTH,
) -> str:
    """One line, e.g. `running [#####-----]  41.7%  626/1,500 records, 3 failed  85.3 rec/s  ETA 0:10`."""
    done = completed + failed
    if total:
        fraction = min(1.0, done / total)
        filled = int(fraction * width)
        bar = "#" * filled + "-" * (width - filled)
        percent = f"{fraction * 100:5.1f}%"
        count = f"{done:,}/{total:,} records"
    else:
        bar = "-" * width
        percent = "    ?%" if total is None else "100.0%"
        count = f"{done:,}/{'?' if total is None else 0} records"
    failures = f", {failed:,} failed" if failed else ""
    eta = format_duration(eta_seconds(done, total, rate))
    return f"{status:<10} [{bar}] {percent}  {count}{failures}  {format_rate(rate)}  ETA {eta}"


class RateMeter:
    """Records per second over roughly the last `window` seconds of observations."""

    def __init__(self, window: float = RATE_WINDOW_SECONDS) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, at: float, done: int) -> None:
        self._samples.append((at, done))
        # Keep one sample at or before the window's start, so the rate always spans the window.
        while len(self._samples) > 2 and self._samples[1][0] <= at - self.window:
            self._samples.popleft()

    def rate(self) -> float | None:
        if len(self._samples) < 2:
            return None
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        if t1 <= t0:
            return None
        return max(0, d1 - d0) / (t1 - t0)


def metrics_line(job: Job) -> str:
    """Training and evaluation figures: `epoch 2/3  loss 0.4123  val_loss 0.3890  acc 0.912  f1 0.905`."""
    m = job.metrics or {}
    parts = []
    if "epoch" in m and "epochs" in m:
        parts.append(f"epoch {m['epoch']}/{m['epochs']}")
    for key, name, digits in (
        ("train_loss", "loss", 4),
        ("validation_loss", "val_loss", 4),
        ("accuracy", "acc", 3),
        ("macro_f1", "f1", 3),
    ):
        if isinstance(m.get(key), (int, float)):
            parts.append(f"{name} {m[key]:.{digits}f}")
    return "  ".join(parts)


def summarize(job: Job, elapsed: float | None = None) -> str:
    """The final line about a job: how it ended, its counts and, on failure, why."""
    p = job.progress
    total = "?" if p.total is None else f"{p.total:,}"
    line = f"{job.id} {job.status}: {p.completed:,} completed, {p.failed:,} failed of {total} records"
    if elapsed is not None:
        line += f" in {format_duration(elapsed)}"
        if elapsed > 0 and p.done:
            line += f" ({format_rate(p.done / elapsed)})"
    if job.result_model:
        line += f"; model {job.result_model}"
    figures = metrics_line(job)
    if figures:
        line += f"; {figures}"
    if job.error is not None:
        line += f"; error: {job.error.code}: {job.error.message}"
    return line


def short_status(job: Job) -> str:
    """`job_… running embedding minilm-l6 626/1,500 (3 failed)`."""
    p = job.progress
    total = "?" if p.total is None else f"{p.total:,}"
    parts = [job.id, job.status, job.task or job.type, job.model or "-", f"{p.done:,}/{total}"]
    if p.failed:
        parts.append(f"({p.failed:,} failed)")
    if job.error is not None:
        parts.append(f"error: {job.error.code}: {job.error.message}")
    return " ".join(parts)


class ProgressBar:
    """Draws a job's progress on `stream`: redrawn in place on a TTY, a line per interval otherwise."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        tty: bool | None = None,
        interval: float = LOG_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self._isatty(self.stream) if tty is None else tty
        self.interval = interval
        self.clock = clock
        self.meter = RateMeter()
        self.started = clock()
        self._last_line_at: float | None = None
        self._last_status: str | None = None
        self._drawn = False

    @staticmethod
    def _isatty(stream: TextIO) -> bool:
        try:
            return stream.isatty()
        except (AttributeError, ValueError):
            return False

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def line(self, job: Job) -> str:
        p = job.progress
        line = render_progress(
            status=job.status,
            completed=p.completed,
            failed=p.failed,
            total=p.total,
            rate=self.meter.rate(),
        )
        figures = metrics_line(job)
        return f"{line}  {figures}" if figures else line

    def update(self, job: Job) -> None:
        """Take one observation of the job (pass it as `Client.wait(on_progress=...)`)."""
        now = self.clock()
        self.meter.add(now, job.progress.done)
        if self.tty:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r" + self.line(job)[:width] + "\x1b[K")
            self.stream.flush()
            self._drawn = True
        elif (
            self._last_line_at is None
            or now - self._last_line_at >= self.interval
            or job.status != self._last_status
            or job.is_terminal
        ):
            self.stream.write(self.line(job) + "\n")
            self.stream.flush()
            self._last_line_at = now
        self._last_status = job.status

    def finish(self) -> None:
        """End the in-place line so what follows starts on a fresh one."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
