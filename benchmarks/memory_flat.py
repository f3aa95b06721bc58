"""Worker memory is flat in job size (issue #6, item 5): peak RSS for a small vs a large job.

    .venv/bin/python benchmarks/memory_flat.py --small 10000 --large 100000
    nice -n 5 .venv/bin/python benchmarks/memory_flat.py --model tiny --small 10000 --large 1000000

The full distributed stack (benchmarks/stack.py). For each job size a FRESH worker starts (so the peak
is that job's), runs a warm-up job of 100 records, then the job; the peak RSS (VmHWM) of every process of
the worker (its main process and its prefork pool child) is sampled every 0.5 s from /proc, and the
largest is reported. Target: large / small < 1.2.

`--model minilm` (default): the built-in all-MiniLM-L6-v2 (~175 records/s on one thread here, so a 1M
job takes ~1.6 h). `--model tiny`: memory flatness is a property of the pipeline (byte-range reads of
the input, one part's records in memory at a time, part objects streamed, the finalize join done in
storage), not of the model, so this builds a random-weight 2-layer BERT (hidden `--tiny-hidden`) with a
WordPiece vocabulary of the demo sentences' words, saves it as safetensors with its tokenizer, and
registers it like any user model (`inferq models import DIR --name tiny-embed --task embedding`); both
job sizes run on it. Its jobs ask for `precision: fp32` (bf16 autocast only adds overhead to a 32-wide
model). The texts are examples/data/sentences.jsonl, cycled, for both models.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
from e2e_distributed import server_seconds
from stack import Stack

from inferq.client import Client, Job

TINY_NAME = "tiny-embed"
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


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


def status_mib(pid: int, field: str) -> float:
    """A /proc/PID/status memory field (VmHWM: peak RSS, VmRSS: current RSS) in MiB; 0 if gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def hwm_mib(pid: int) -> float:
    return status_mib(pid, "VmHWM")


class PeakSampler(threading.Thread):
    """The largest VmHWM of the worker's processes; also (time, largest current RSS) every sample, to see
    whether memory grows along the job."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0.0
        self.timeline: list[tuple[float, float]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.sample()

    def sample(self) -> None:
        pids = tree(self.pid)
        self.peak = max([self.peak, *(hwm_mib(p) for p in pids)])
        self.timeline.append((time.monotonic(), max(status_mib(p, "VmRSS") for p in pids)))

    def rss_at(self, start: float, end: float, fractions: tuple[float, ...]) -> list[float]:
        """The largest process's current RSS at these fractions of [start, end] (nearest sample)."""
        out = []
        for f in fractions:
            at = start + f * (end - start)
            near = [s for s in self.timeline if start <= s[0] <= end] or self.timeline
            out.append(min(near, key=lambda s: abs(s[0] - at))[1] if near else 0.0)
        return out


def make_tiny_embedding_model(path: Path, hidden: int, *, seed: int = 0) -> Path:
    """A random-weight 2-layer BERT encoder (hidden `hidden`) saved as safetensors with a WordPiece
    tokenizer whose vocabulary is the demo sentences' words, so most words are real tokens, not [UNK]."""
    import torch
    from transformers import (  # type: ignore[attr-defined]  # BertTokenizerFast: lazy alias
        BertConfig,
        BertModel,
        BertTokenizerFast,
    )

    path.mkdir(parents=True, exist_ok=True)
    words: set[str] = set()
    for text in common.base_texts():
        words.update(re.findall(r"\w+|[^\w\s]", text.lower()))
    vocab = [*SPECIAL_TOKENS, *sorted(words - set(SPECIAL_TOKENS))]
    vocab_file = path / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    BertModel(config).eval().save_pretrained(path)
    BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True, model_max_length=128).save_pretrained(
        path
    )
    if not (path / "model.safetensors").is_file():
        raise RuntimeError(f"save_pretrained wrote no model.safetensors in {path}")
    return path


def write_input(path: Path, records: int) -> Path:
    """`records` JSONL lines of the demo sentences (cycled), written as they are made."""
    base = common.base_texts()
    with path.open("w", encoding="utf-8") as f:
        for i in range(records):
            f.write(json.dumps({"id": f"r{i:07d}", "text": base[i % len(base)]}) + "\n")
    return path


def run_job(client: Client, model: str, file_id: str, params: dict[str, Any], poll: float = 1.0) -> Job:
    """Submit an embedding job and poll until it ends."""
    job = client.submit(task="embedding", model=model, input_file=file_id, params=params)
    while True:
        current = client.get(job.id)
        if current.status in ("succeeded", "failed", "cancelled", "expired"):
            return current
        time.sleep(poll)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=1, help="the worker's torch threads")
    parser.add_argument(
        "--model",
        choices=("minilm", "tiny"),
        default="minilm",
        help="minilm: the built-in all-MiniLM-L6-v2; tiny: a random-weight 2-layer BERT (see above)",
    )
    parser.add_argument("--tiny-hidden", type=int, default=32, help="hidden size of the tiny model")
    parser.add_argument("--work-dir", type=Path, default=common.ROOT / "benchmarks" / ".work" / "memory")
    parser.add_argument("--no-results", action="store_true", help="print the rows, do not append them")
    args = parser.parse_args()
    rows = []
    peaks: dict[int, float] = {}
    notes: list[str] = []
    with Stack(args.work_dir, extra_env={"INFERQ_TORCH_THREADS": str(args.threads)}) as stack:
        stack.serve()
        client = Client(stack.url, stack.key, timeout=3600)
        if args.model == "tiny":
            folder = make_tiny_embedding_model(args.work_dir / TINY_NAME, args.tiny_hidden)
            model = stack.cli(
                [
                    *("models", "import", str(folder), "--name", TINY_NAME),
                    *("--task", "embedding", "--tenant", "bench"),
                ]
            ).strip()
            params: dict[str, Any] = {"precision": "fp32"}
            print(f"registered {model} from {folder}", file=sys.stderr)
        else:
            model, params = "minilm-l6", {}
        warm_id = client.upload(write_input(args.work_dir / "warm.jsonl", 100)).id
        for n, size in enumerate((args.small, args.large)):
            path = write_input(args.work_dir / f"in{size}.jsonl", size)
            in_mib = path.stat().st_size / 2**20
            file_id = client.upload(path).id
            path.unlink()
            proc = stack.worker(f"worker{n}")
            sampler = PeakSampler(proc.pid)
            sampler.start()
            warm = run_job(client, model, warm_id, params)
            assert warm.status == "succeeded", warm.raw
            load = common.load_note()
            started = time.monotonic()
            job = run_job(client, model, file_id, params)
            ended = time.monotonic()
            sampler.done.set()
            sampler.join()
            sampler.sample()
            assert job.status == "succeeded", job.raw
            along = sampler.rss_at(started, ended, (0.25, 0.5, 0.75, 1.0))
            stack.stop(f"worker{n}")
            peaks[size] = sampler.peak
            seconds = server_seconds(job.raw)
            events = client.events(job.id)
            parts = len([e for e in events if e["kind"] == "part_done"])
            out_mib = client.file(str(job.output_file)).bytes / 2**20
            rows.append(
                f"| {size} | {parts} | {in_mib:.0f} / {out_mib:.0f} MiB | {seconds:.1f} s "
                f"| {size / seconds:.0f} | {sampler.peak:.0f} MiB "
                f"| {' / '.join(f'{v:.0f}' for v in along)} MiB | {load} |"
            )
            print(rows[-1], file=sys.stderr)
    ratio = peaks[args.large] / peaks[args.small]
    if args.model == "tiny":
        notes.append(
            f"Model: `{model}`, a random-weight 2-layer BERT (hidden {args.tiny_hidden}, intermediate "
            f"{2 * args.tiny_hidden}, 128 positions) with a WordPiece vocabulary of the demo sentences' "
            "words, saved as safetensors and registered with `inferq models import`; job params "
            '`{"precision": "fp32"}`. Memory flatness is the pipeline\'s; this model only makes 1M '
            "records take minutes rather than ~1.6 h."
        )
    else:
        notes.append("Model: the built-in `minilm-l6` (all-MiniLM-L6-v2), default job params.")
    notes.append(
        "A fresh worker per job size (prefork, concurrency 1, "
        f"{args.threads} torch thread); VmHWM of the worker's processes sampled every 0.5 s; the "
        "current RSS of the largest process at 25/50/75/100 % of the job's run shows whether memory "
        "grows along the job. Time: submit → succeeded by the job's own timestamps. "
        f"**large/small = {ratio:.2f} (target < 1.2: {'met' if ratio < 1.2 else 'NOT met'}).**"
    )
    header = (
        "| records | parts | input / output | submit → succeeded | records/s "
        "| worker peak RSS (largest process) | RSS at 25/50/75/100 % of the job | load before |"
    )
    title = "Worker peak RSS vs job size" + (" (tiny model)" if args.model == "tiny" else "")
    if args.no_results:
        print("\n".join([header, *rows, *notes]))
    else:
        common.append_results(f"{title} (issue #6)", header, rows, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
