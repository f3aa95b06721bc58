"""The GPU run (issue #6, item 8): end to end vs the direct loops on one GPU, as one prepared script.

    python3 benchmarks/gpu_run.py --out "$OUT" --records 200000 --direct-records 100000

Made for a short lease on a GPU machine (benchmarks/gpu_device.sh sets it up there), runs anywhere
(`--records 3000 --direct-records 2000 --e2e 1x500` on the CPU checks it). Each stage appends its result
to OUT/gpu.jsonl as soon as it ends, so a stage that fails or runs out of time keeps the ones before it:

1. probe: the GPU, torch/transformers versions, CPU count.
2. direct (a child process, which exits before the stacks start): on the same real texts (the demo
   sentences cycled), model loaded once and warmed up:
   - sentence-transformers `encode(batch_size=32)` in fp32 and in fp16 (`model.half()`);
   - a naive HF loop, batch 32 in file order, padded to the longest, fp32;
   - inferq's own loop (`run_predictions`: length-sorted, token-budget batches, pinned host memory, one
     batch in flight) at fp32 and at the automatic precision (bf16 on this GPU), with a sweep of the
     token budget / batch cap around the GPU default;
   - the forward-only ceiling: the same bf16 batches tokenized and copied to the GPU beforehand, only
     the model and pooling timed (what the GPU alone could do);
   - the minimum cosine of bf16 to fp32 vectors over every distinct text.
3. e2e, per `--e2e WORKERSxPART_RECORDS` item: `inferq up` (API, SQLite, storage folder, filesystem
   broker; the workers on the GPU) in a fresh data dir; a warm-up job, then one embedding job of
   `--records` timed from submit to `succeeded` by the job's own timestamps; output checked line by line
   (count, order, cosine of the first vectors to the direct fp32 ones); the per-part breakdown summed
   from the `part_done` events.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
from e2e_distributed import breakdown, server_seconds
from e2e_job import EmbeddedStack

from inferq.client import Client

CHECK_VECTORS = 1000  # e2e output vectors compared with the direct fp32 ones (the first records)


def emit(out: Path, stage: str, **result: Any) -> None:
    row = {"stage": stage, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), **result}
    with (out / "gpu.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def probe(out: Path) -> None:
    import torch
    import transformers

    smi = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False).stdout.strip()
    emit(
        out,
        "probe",
        gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        nvidia_smi=smi,
        torch=torch.__version__,
        transformers=transformers.__version__,
        python=platform.python_version(),
        cpus=os.cpu_count(),
        cpu=platform.processor() or platform.machine(),
    )


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(device: Any, run: Any) -> tuple[float, Any]:
    _sync(device)
    started = time.perf_counter()
    result = run()
    _sync(device)
    return time.perf_counter() - started, result


def direct(out: Path, records: int, ref_path: Path, quick: bool = False) -> None:
    """The direct loops, in this process (the model loaded once per loop kind, each warmed up first)."""
    import torch
    import torch.nn.functional as F
    from sentence_transformers import SentenceTransformer

    from inferq.shared.registry import builtin_path
    from inferq.worker.batching import padding_ratio, plan_batches
    from inferq.worker.inference import GPU_BATCHING, batching_for, resolve_device, run_predictions
    from inferq.worker.predictors import load_predictor
    from inferq.worker.predictors.embedding import pool

    device = resolve_device()
    texts = common.texts(records)
    distinct = list(dict.fromkeys(texts))
    folder = builtin_path("minilm-l6")
    predictor = load_predictor("embedding", folder, device, common.MINILM)
    prepared = predictor.preprocess(texts, {})  # tokenized once: the token count and the ceiling's batches
    tokens = sum(prepared.lengths)

    def report(loop: str, seconds: float, **extra: Any) -> None:
        emit(
            out,
            "direct",
            loop=loop,
            device=str(device),
            records=records,
            seconds=round(seconds, 3),
            records_per_s=round(records / seconds, 1),
            tokens_per_s=round(tokens / seconds),
            **extra,
        )

    def inferq(precision: str, budget: tuple[int, int], items: list[str] = texts) -> list[Any]:
        result = run_predictions(
            predictor, items, {"precision": precision}, batch_tokens=budget[0], max_batch_size=budget[1]
        )
        return [o["embedding"] for o in result.outputs]

    default = batching_for(device)
    inferq("auto", default, texts[:2000])  # warm-up: kernels chosen, allocator primed
    fp32_distinct = np.stack(inferq("fp32", default, distinct))
    auto_distinct = np.stack(inferq("auto", default, distinct))
    cos = (fp32_distinct * auto_distinct).sum(1)  # both normalized
    np.save(ref_path, np.stack(inferq("fp32", default, common.texts(CHECK_VECTORS))))
    emit(out, "cosine", texts=len(distinct), min_cosine_auto_vs_fp32=round(float(cos.min()), 6))

    seconds, _ = _timed(device, lambda: inferq("fp32", default))
    report("inferq run_predictions fp32", seconds, batching=list(default))
    sweep = [default] if device.type != "cuda" or quick else [(16384, 128), GPU_BATCHING, (131072, 1024)]
    for budget in sweep:
        seconds, _ = _timed(device, lambda b=budget: inferq("auto", b))  # type: ignore[misc]
        report("inferq run_predictions auto", seconds, batching=list(budget))

    # The forward-only ceiling: the default bf16 batches already tokenized and on the device.
    batches = plan_batches(prepared.lengths, *default)
    on_device = [predictor.collate(prepared, b) for b in batches]
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32

    def forward_only() -> None:
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            for batch in on_device:
                F.normalize(
                    pool(predictor.model(**batch).last_hidden_state.float(), batch["attention_mask"], "mean")
                )

    forward_only()
    seconds, _ = _timed(device, forward_only)
    report(
        "forward only (pre-tokenized, on device), auto",
        seconds,
        batching=list(default),
        padding_ratio=round(padding_ratio(prepared.lengths, batches), 4),
    )

    if quick:
        return

    # The naive loop: batch 32 in file order, fp32 (what a hand-written HF loop does).
    def naive() -> None:
        with torch.inference_mode():
            for i in range(0, len(texts), 32):
                enc = predictor.tokenizer(
                    texts[i : i + 32], padding=True, truncation=True, max_length=256, return_tensors="pt"
                ).to(device)
                hidden = predictor.model(**enc).last_hidden_state
                F.normalize(pool(hidden, enc["attention_mask"], "mean")).cpu().numpy()

    seconds, _ = _timed(device, naive)
    report("naive HF loop, batch 32 in file order, fp32", seconds)

    st = SentenceTransformer(str(folder), device=str(device), model_kwargs={"dtype": torch.float32})
    st.encode(texts[:2000], batch_size=32)
    seconds, _ = _timed(device, lambda: st.encode(texts, batch_size=32, normalize_embeddings=True))
    report("sentence-transformers encode, batch 32, fp32", seconds)
    if device.type == "cuda":
        st.half()
        st.encode(texts[:2000], batch_size=32)
        seconds, _ = _timed(device, lambda: st.encode(texts, batch_size=32, normalize_embeddings=True))
        report("sentence-transformers encode, batch 32, fp16 (model.half())", seconds)
        seconds, _ = _timed(device, lambda: st.encode(texts, batch_size=256, normalize_embeddings=True))
        report("sentence-transformers encode, batch 256, fp16 (model.half())", seconds)


def read_output(path: Path, records: int) -> tuple[int, bool, np.ndarray]:
    """Lines, whether the ids are r0000000… in input order, and the first CHECK_VECTORS vectors."""
    import orjson

    lines = 0
    in_order = True
    vectors = []
    with path.open("rb") as f:
        for line in f:
            row = orjson.loads(line)
            in_order = in_order and row["id"] == f"r{lines:07d}"
            if lines < CHECK_VECTORS:
                vectors.append(row["embedding"])
            lines += 1
    return lines, in_order and lines == records, np.asarray(vectors, dtype=np.float32)


def e2e(out: Path, work: Path, records: int, workers: int, part_records: int, ref_path: Path) -> None:
    texts = common.texts(records)
    input_path = common.write_jsonl(work / "input.jsonl", texts)
    warm = common.write_jsonl(work / "warm.jsonl", texts[: 2000 * workers])
    env = {"INFERQ_PART_RECORDS": str(part_records)} if part_records else {}
    with EmbeddedStack(work / f"stack-{workers}x{part_records}", workers, env) as stack:
        client = Client(stack.url, stack.key, timeout=900)
        upload_started = time.perf_counter()
        file_id = client.upload(input_path).id
        upload_seconds = time.perf_counter() - upload_started
        warm_id = client.upload(warm).id
        client.wait(client.submit(task="embedding", model="minilm-l6", input_file=warm_id).id)
        started = time.perf_counter()
        job = client.submit(task="embedding", model="minilm-l6", input_file=file_id)
        final = client.wait(job.id, poll=0.25)
        wall = time.perf_counter() - started
        seconds = server_seconds(final.raw)
        download_started = time.perf_counter()
        output = client.download(job.id, work / "output.jsonl")
        download_seconds = time.perf_counter() - download_started
        lines, in_order, vectors = read_output(output, records)
        want = np.load(ref_path)[: len(vectors)]
        cos = (vectors * want).sum(1) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(want, axis=1))
        parts = breakdown(client.events(job.id))
        metrics = final.raw.get("metrics") or {}
        output.unlink()
    emit(
        out,
        "e2e",
        workers=workers,
        part_records=part_records or "default",
        records=records,
        status=final.status,
        seconds=round(seconds, 3),
        client_seconds=round(wall, 3),
        records_per_s=round(records / seconds, 1),
        lines=lines,
        in_order=in_order,
        min_cosine_to_direct_fp32=round(float(cos.min()), 6) if len(vectors) else None,
        upload_seconds=round(upload_seconds, 2),
        download_seconds=round(download_seconds, 2),
        padding_ratio=metrics.get("padding_ratio"),
        parts=parts,
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=common.ROOT / "benchmarks" / ".work" / "gpu")
    parser.add_argument("--records", type=int, default=200_000, help="records of each e2e job")
    parser.add_argument("--direct-records", type=int, default=100_000)
    parser.add_argument(
        "--e2e", default="2x50000,4x50000,1x0", help="WORKERSxPART_RECORDS,… (0: the default part size)"
    )
    parser.add_argument("--quick", action="store_true", help="direct: only inferq's loops and the ceiling")
    parser.add_argument("--stage", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(os.environ.get("GPU_RUN_WORK") or common.ROOT / "benchmarks" / ".work" / "gpu-run")
    work.mkdir(parents=True, exist_ok=True)
    ref_path = work / "ref_fp32.npy"
    if args.stage == "direct":
        direct(args.out, args.direct_records, ref_path, args.quick)
        return 0
    failed = 0
    direct_cmd = [sys.executable, __file__, "--stage", "direct", "--out", str(args.out)]
    direct_cmd += ["--direct-records", str(args.direct_records)] + (["--quick"] if args.quick else [])
    stages: list[tuple[str, Any]] = [
        ("probe", lambda: probe(args.out)),
        (
            "direct",
            lambda: subprocess.run(direct_cmd, check=True),
        ),
    ]
    for item in filter(None, args.e2e.split(",")):
        workers, part = (int(x) for x in item.split("x"))
        stages.append(
            (f"e2e {item}", lambda w=workers, p=part: e2e(args.out, work, args.records, w, p, ref_path))
        )
    for name, run in stages:
        started = time.perf_counter()
        try:
            run()
        except Exception as e:  # the next stage still runs; the failure is a result too
            failed += 1
            emit(args.out, "failed", name=name, error=f"{type(e).__name__}: {e}")
        print(f"# {name}: {time.perf_counter() - started:.1f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
