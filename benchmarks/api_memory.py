"""The API's memory is flat during a 1 GB upload and download (issue #6, item 5).

    .venv/bin/python benchmarks/api_memory.py --sizes-mib 100,1024

The full stack (benchmarks/stack.py: moto S3 server, Postgres, Redis, `inferq serve` with 16 waitress
threads; no worker is needed). The RSS of the `inferq serve` process tree (VmRSS, and VmHWM, its peak) is
sampled from /proc every 0.2 s. After a warm-up upload and download of a 1 MiB file, the current RSS is
the baseline. Then, for each size, a JSONL input file (the demo sentences, two per record, with ids) is
written to disk as it is made (never held in memory), uploaded with `curl -F file=@…` (curl streams
from the file) and downloaded with `curl -o` from `GET /v1/files/{id}/content`; the downloaded bytes'
SHA-256 and count are checked against the file written and against the API's file object. Reported:
the largest RSS of the tree during each transfer and its growth over the baseline. Target: the growth is
a small constant (< 100 MiB) whatever the size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
from memory_flat import sentences, status_mib, tree
from stack import Stack

MIB = 1024 * 1024
TARGET_GROWTH_MIB = 100.0


class RssSampler(threading.Thread):
    """Every 0.2 s: the summed current RSS of a process tree; `mark()` starts a new phase whose
    largest sample `phase_peak()` returns."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.current = 0.0
        self.peak_since_mark = 0.0
        self.lock = threading.Lock()
        self.done = threading.Event()

    def sample(self) -> float:
        rss = sum(status_mib(p, "VmRSS") for p in tree(self.pid))
        with self.lock:
            self.current = rss
            self.peak_since_mark = max(self.peak_since_mark, rss)
        return rss

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.sample()

    def mark(self) -> float:
        rss = self.sample()
        with self.lock:
            self.peak_since_mark = rss
        return rss

    def phase_peak(self) -> float:
        self.sample()
        with self.lock:
            return self.peak_since_mark

    def hwm(self) -> float:
        return max(status_mib(p, "VmHWM") for p in tree(self.pid))


def write_input(path: Path, size: int) -> tuple[int, int, str]:
    """JSONL records of two demo sentences each, written until the file reaches `size` bytes;
    (bytes, records, sha256)."""
    base = sentences()
    sha = hashlib.sha256()
    written = records = 0
    with path.open("wb") as f:
        while written < size:
            block = bytearray()
            for _ in range(1000):
                text = base[records % len(base)] + " " + base[(records * 7 + 3) % len(base)]
                block += json.dumps({"id": f"r{records:08d}", "text": text}).encode() + b"\n"
                records += 1
            f.write(block)
            sha.update(block)
            written += len(block)
    return written, records, sha.hexdigest()


def sha256_file(path: Path) -> tuple[int, str]:
    sha = hashlib.sha256()
    n = 0
    with path.open("rb") as f:
        while chunk := f.read(MIB):
            sha.update(chunk)
            n += len(chunk)
    return n, sha.hexdigest()


def curl_upload(url: str, key: str, path: Path) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    out = subprocess.run(
        [
            *("curl", "-sS", "--fail-with-body", "-H", f"Authorization: Bearer {key}", "-H", "Expect:"),
            *("-F", "purpose=input", "-F", f"file=@{path};type=application/x-ndjson"),
            f"{url}/v1/files",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"upload failed ({out.returncode}): {out.stdout[-2000:]} {out.stderr[-2000:]}")
    return seconds, dict(json.loads(out.stdout))


def curl_download(url: str, key: str, file_id: str, dest: Path) -> tuple[float, dict[str, str]]:
    started = time.perf_counter()
    headers = dest.with_suffix(".headers")
    out = subprocess.run(
        [
            *("curl", "-sS", "--fail", "-H", f"Authorization: Bearer {key}"),
            *("-D", str(headers), "-o", str(dest), f"{url}/v1/files/{file_id}/content"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"download failed ({out.returncode}): {out.stderr[-2000:]}")
    found: dict[str, str] = {}
    for line in headers.read_text("latin-1").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            found[name.strip().lower()] = value.strip()
    headers.unlink()
    return seconds, found


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes-mib", default="100,1024", help="comma-separated input sizes in MiB")
    parser.add_argument("--tmp", type=Path, default=Path("/tmp/inferq-api-memory"))
    parser.add_argument("--work-dir", type=Path, default=common.ROOT / "benchmarks" / ".work" / "api-memory")
    parser.add_argument("--no-results", action="store_true", help="print the rows, do not append them")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes_mib.split(",") if s]
    args.tmp.mkdir(parents=True, exist_ok=True)
    rows: list[str] = []
    growths: list[float] = []
    checks: list[bool] = []
    try:
        with Stack(args.work_dir) as stack:
            stack.serve()
            serve_pid = stack.procs["serve"].pid
            moto_pid = stack.procs["moto"].pid
            sampler = RssSampler(serve_pid)
            sampler.start()
            # Warm-up: one small upload and download (imports, boto3 clients and pools, DB pool).
            warm = args.tmp / "warm.jsonl"
            write_input(warm, MIB)
            for _ in range(2):
                _, obj = curl_upload(stack.url, stack.key, warm)
                curl_download(stack.url, stack.key, obj["id"], args.tmp / "warm.out")
            time.sleep(1.0)
            baseline = sampler.mark()
            print(f"baseline RSS {baseline:.0f} MiB (VmHWM {sampler.hwm():.0f})", file=sys.stderr)
            for size_mib in sizes:
                src = args.tmp / f"in-{size_mib}.jsonl"
                dest = args.tmp / f"out-{size_mib}.jsonl"
                n_bytes, n_records, sha = write_input(src, size_mib * MIB)
                load = common.load_note()
                before = sampler.mark()
                up_s, obj = curl_upload(stack.url, stack.key, src)
                up_peak = sampler.phase_peak()
                after_up = sampler.mark()
                down_s, headers = curl_download(stack.url, stack.key, obj["id"], dest)
                down_peak = sampler.phase_peak()
                got_bytes, got_sha = sha256_file(dest)
                ok = (
                    got_bytes == n_bytes == int(obj["bytes"])
                    and got_sha == sha == obj["sha256"] == headers.get("x-content-sha256")
                    and int(obj["records"]) == n_records
                )
                checks.append(ok)
                src.unlink()
                dest.unlink()
                growths += [up_peak - baseline, down_peak - baseline]
                rows.append(
                    f"| {n_bytes / MIB:.0f} MiB ({n_records} records) | upload (curl -F) | {up_s:.1f} s "
                    f"({n_bytes / MIB / up_s:.0f} MiB/s) | {before:.0f} MiB | {up_peak:.0f} MiB "
                    f"| +{up_peak - baseline:.0f} MiB | {obj['sha256'][:12]}… | {load} |"
                )
                rows.append(
                    f"| {n_bytes / MIB:.0f} MiB | download (curl -o) | {down_s:.1f} s "
                    f"({n_bytes / MIB / down_s:.0f} MiB/s) | {after_up:.0f} MiB | {down_peak:.0f} MiB "
                    f"| +{down_peak - baseline:.0f} MiB | {'match' if ok else 'MISMATCH'} "
                    f"({got_bytes} bytes) | {common.load_note()} |"
                )
                print(rows[-2] + "\n" + rows[-1], file=sys.stderr)
            hwm = sampler.hwm()
            moto_hwm = max(status_mib(p, "VmHWM") for p in tree(moto_pid))
            sampler.done.set()
    finally:
        for p in args.tmp.glob("*"):
            p.unlink()
        args.tmp.rmdir()
    # The 0.2 s samples can miss a short peak; the process's VmHWM cannot.
    worst = max(*growths, hwm - baseline)
    met = worst < TARGET_GROWTH_MIB and all(checks)
    notes = [
        "Full stack (moto S3 server, Postgres, Redis, `inferq serve` with 16 waitress threads). RSS of "
        "the `inferq serve` process tree sampled every 0.2 s from /proc; baseline = its RSS after a "
        f"warm-up upload and download of a 1 MiB file: **{baseline:.0f} MiB**. The serve process's "
        f"VmHWM at the end: {hwm:.0f} MiB. The moto S3 server (a test double that keeps objects in "
        f"memory, not part of inferq) peaked at {moto_hwm:.0f} MiB.",
        "Input: the demo sentences, two per record, with ids, written to /tmp as made; uploaded with "
        "`curl -F file=@…` (streamed from disk), downloaded with `curl -o`; the downloaded bytes' "
        "count and SHA-256 are checked against the file written, the file object (`bytes`, `sha256`, "
        "`records`) and the `X-Content-SHA256` header.",
        "**Largest growth over the baseline (the largest sample, or the final VmHWM minus the "
        f"baseline): {worst:.0f} MiB (target < {TARGET_GROWTH_MIB:.0f} MiB, "
        f"flat in size; bytes and SHA-256 {'all match' if all(checks) else 'DO NOT all match'}): "
        f"{'met' if met else 'NOT met'}.**",
    ]
    header = (
        "| file | transfer | time | RSS before | peak RSS during | growth over baseline "
        "| SHA-256 / check | load before |"
    )
    if args.no_results:
        print("\n".join([header, *rows, *notes]))
    else:
        common.append_results("API memory during upload and download (issue #6)", header, rows, notes)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
