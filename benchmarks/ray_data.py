"""Ray Data `map_batches`, written the typical way, on the same texts (issue #6, item 3: a peer).

Ray is never a project dependency: run this with the Python of a SEPARATE virtualenv that has
`ray[data]` and can import torch/transformers (for example one whose site-packages end with a .pth
line pointing at the project's .venv site-packages):

    python3 -m venv /tmp/rayenv/venv && /tmp/rayenv/venv/bin/pip install "ray[data]"
    echo /work/main/.venv/lib/python3.11/site-packages > /tmp/rayenv/venv/lib/python3.11/site-packages/zz.pth
    /tmp/rayenv/venv/bin/python benchmarks/ray_data.py --records 2000 --actors 2 --threads 1

The model is loaded in an actor class; `map_batches(batch_size=32)` with an actor pool over the records in
file order, padded to the longest of each batch, fp32 (as users typically write it). Timed from before
`ray.init` (start-up) and from the first record to the last; the peak memory is the largest sum of RSS
over the driver's process tree (raylet, GCS, workers), sampled every 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
from memory_flat import tree


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class TreeSampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.peak = max(self.peak, sum(rss_mib(p) for p in tree(os.getpid())))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per actor")
    args = parser.parse_args()
    texts = common.texts(args.records)
    sampler = TreeSampler()
    sampler.start()
    load = common.load_note()
    started = time.perf_counter()
    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    threads = args.threads

    class Embedder:
        def __init__(self) -> None:
            import torch
            from transformers import AutoModel, AutoTokenizer

            from shared.registry import builtin_path

            torch.set_num_threads(threads)
            folder = str(builtin_path("minilm-l6"))
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            self.model = AutoModel.from_pretrained(folder).eval()

        def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
            import torch
            import torch.nn.functional as F

            enc = self.tokenizer(
                list(batch["text"]), padding=True, truncation=True, max_length=256, return_tensors="pt"
            )
            with torch.inference_mode():
                hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            vectors = F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=1)
            return {"id": batch["id"], "embedding": vectors.numpy()}

    items = [{"id": f"r{i:07d}", "text": t} for i, t in enumerate(texts)]
    ds = ray.data.from_items(items)
    ready = time.perf_counter()
    out = ds.map_batches(
        Embedder,
        batch_size=32,
        concurrency=args.actors,
        num_cpus=max(1, (os.cpu_count() or 2) // args.actors),
    ).take_all()
    finished = time.perf_counter()
    ray.shutdown()
    sampler.done.set()
    sampler.join()
    assert len(out) == args.records
    total = finished - started
    run = finished - ready
    row = (
        f"| Ray Data {ray.__version__} map_batches, {args.actors} actor(s) x {args.threads} thread(s), "
        f"batch 32, file order, fp32 | {args.records} | {args.records / run:.1f} (excl. start-up) / "
        f"{args.records / total:.1f} (incl.) | {ready - started:.1f} s | {sampler.peak:.0f} MiB | {load} |"
    )
    out_dir = common.ROOT / "benchmarks" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "ray_data.json").write_text(
        json.dumps(
            {
                "actors": args.actors,
                "threads": args.threads,
                "records": args.records,
                "records_per_s": round(args.records / run, 1),
                "startup_seconds": round(ready - started, 1),
                "peak_tree_rss_mib": round(sampler.peak),
            }
        )
    )
    common.append_results(
        "Ray Data peer (issue #6)",
        "| what | records | records/s | start-up | peak RSS (process tree, summed) | load before |",
        [row],
        [
            "Run from a separate virtualenv with ray[data] (never a project dependency); model and texts "
            "as in benchmarks/direct_loops.py."
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
