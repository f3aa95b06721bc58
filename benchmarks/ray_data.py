"""Ray Data `map_batches`, written the typical way, on the same texts (issue #6, item 3: a peer).

Ray is never a project dependency: run this with the Python of a SEPARATE virtualenv that has
`ray[data]` and can import torch/transformers (for example one whose site-packages end with a .pth
line pointing at the project's .venv site-packages):

    python3 -m venv /tmp/rayenv/venv && /tmp/rayenv/venv/bin/pip install "ray[data]==2.60.0"
    echo /work/main/.venv/lib/python3.11/site-packages > /tmp/rayenv/venv/lib/python3.11/site-packages/zz.pth
    /tmp/rayenv/venv/bin/python benchmarks/ray_data.py --records 2000 --actors 2 --threads 1

benchmarks/peers.py runs this script (with `--no-append --json-out ...`) for its Ray rows, in the same run
as inferq and the naive loop; that is the comparison to quote.

The model is loaded in an actor class; `map_batches(batch_size=32)` with an actor pool over the records in
file order, padded to the longest of each batch, fp32 (as users typically write it), its output consumed
as `take_all()` would (streamed, counted). Three rates: steady (from the moment every actor has sent a
batch back, i.e. all are up with their model loaded, to the last batch; Ray's best figure), from the
`map_batches` call (actor start and model load included) and from before `ray.init`. The peak memory is
the largest sum of RSS over the driver's process tree (raylet, GCS, workers), sampled every 0.5 s
(peers.py also sums every process carrying an environment tag, which finds Ray's workers wherever they
were reparented).
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
from memory_flat import status_mib, tree


class TreeSampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.peak = max(self.peak, sum(status_mib(p, "VmRSS") for p in tree(os.getpid())))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per actor")
    parser.add_argument(
        "--json-out", type=Path, default=common.ROOT / "benchmarks" / "results" / "ray_data.json"
    )
    parser.add_argument("--no-append", action="store_true", help="do not append to RESULTS.md (peers.py)")
    args = parser.parse_args()
    texts = common.texts(args.records)
    sampler = TreeSampler()
    sampler.start()
    load = common.load_note()
    started = time.perf_counter()
    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        threads = args.threads

        class Embedder:
            def __init__(self) -> None:
                import torch
                from transformers import AutoModel, AutoTokenizer

                from inferq.shared.registry import builtin_path

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
                # `actor`: which actor made the batch (only so the driver can tell when all are up)
                actor = np.full(len(batch["id"]), os.getpid())
                return {"id": batch["id"], "embedding": vectors.numpy(), "actor": actor}

        items = [{"id": f"r{i:07d}", "text": t} for i, t in enumerate(texts)]
        ds = ray.data.from_items(items)
        ready = time.perf_counter()
        mapped = ds.map_batches(
            Embedder,
            batch_size=32,
            concurrency=args.actors,
            num_cpus=max(1, (os.cpu_count() or 2) // args.actors),
        )
        # As take_all() would, but noting when the first batch comes back (the actors are up and their
        # model loaded), so the steady rate leaves Ray's start-up out entirely.
        rows = 0
        first_at = all_at = 0.0
        first_rows = all_rows = 0
        seen: set[int] = set()
        for batch in mapped.iter_batches(batch_size=None, batch_format="numpy"):
            now = time.perf_counter()
            if not rows:
                first_at, first_rows = now, len(batch["id"])
            seen.update(int(a) for a in batch["actor"])
            rows += len(batch["id"])
            if not all_at and len(seen) >= args.actors:  # every actor has its model loaded and works
                all_at, all_rows = now, rows
        finished = time.perf_counter()
        version = ray.__version__
    finally:
        ray.shutdown()
        sampler.done.set()
        sampler.join()
    assert rows == args.records, rows
    total = finished - started
    run = finished - ready
    if all_at and finished > all_at and rows - all_rows >= 32 * args.actors:
        steady = (rows - all_rows) / (finished - all_at)  # from when every actor had sent a batch
    elif finished > first_at:
        steady = (rows - first_rows) / (finished - first_at)
    else:
        steady = rows / run
    result = {
        "ray_version": version,
        "actors": args.actors,
        "threads": args.threads,
        "records": args.records,
        "records_per_s": round(args.records / run, 1),
        "steady_records_per_s": round(steady, 1),
        "records_per_s_incl_init": round(args.records / total, 1),
        "seconds": round(run, 3),
        "startup_seconds": round(ready - started, 1),
        "first_batch_seconds": round(first_at - ready, 1),
        "all_actors_seconds": round(all_at - ready, 1) if all_at else None,
        "peak_tree_rss_mib": round(sampler.peak),
        "load": load,
    }
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(result))
    print(json.dumps(result))
    if args.no_append:
        return 0
    row = (
        f"| Ray Data {version} map_batches, {args.actors} actor(s) x {args.threads} thread(s), "
        f"batch 32, file order, fp32 | {args.records} | {steady:.1f} (steady) / {args.records / run:.1f} "
        f"(from map_batches, actor start included) / {args.records / total:.1f} (incl. ray.init) "
        f"| {ready - started:.1f} s | {sampler.peak:.0f} MiB | {load} |"
    )
    common.append_results(
        "Ray Data peer (issue #6)",
        "| what | records | records/s | start-up | peak RSS (process tree, summed) | load before |",
        [row],
        [
            "Run from a separate virtualenv with ray[data] (never a project dependency); model and texts "
            "as in benchmarks/direct_loops.py. Steady: from the first output batch to the last."
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
