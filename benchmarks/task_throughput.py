"""Classification and image jobs get the embedding jobs' treatment (issue #6, item 4): direct loops vs
end to end.

    .venv/bin/python benchmarks/task_throughput.py --records 2000 --repeats 2

Three models, each measured three ways on the same inputs:

- ``text``: text-classification with a MiniLM sequence classifier: the all-MiniLM-L6-v2 body of the
  built-in `minilm-l6` with a 2-label head, built by the train job's own code (`worker.trainables`,
  family finetune-text, max_length 256) with a fixed seed and not trained (throughput does not depend on
  the head's values). Inputs: examples/data/sentences.jsonl cycled, the texts of the embedding benchmarks.
- ``cnn``: image-classification with the project's CNN (`cnn-small`, 32x32 input), trained here for
  `--cnn-epochs` epochs on the scikit-learn digits of examples/data/digits-train.jsonl with the train
  job's `build_trainable` (held-out accuracy on digits-test.jsonl reported). Inputs: the 1,797 digits
  (train + test, base64 PNG), cycled.
- ``vit``: image-classification with a tiny Hugging Face ViT (hidden 192, 6 layers, 3 heads, patch 16,
  224x224 input; random weights, fixed seed) on `--vit-records` of the same digits (upscaled to 224x224 by
  its image processor). Fewer records: its fp32 loop runs ~15-30 images/s on one core.

Each model is saved as a Hugging Face folder (safetensors) and registered like any user model
(`inferq models import DIR --name NAME --task TASK`). The three ways:

1. a naive direct loop: batches of 32 in file order, fp32, the Hugging Face Auto classes (tokenizer or
   image processor included in the time; images are decoded from PNG before the clock starts);
2. inferq's own direct loop: `worker.inference.run_predictions` with the task's predictor, automatic
   precision (bf16 on CPUs with bf16 units), the CPU default batching (token budget x batch-size cap);
3. inferq end to end: the full stack (benchmarks/stack.py: moto S3, Postgres, Redis, `inferq serve`) with
   ONE fresh `inferq worker` (concurrency 1, `--threads` torch threads) per model, a 100-record warm-up
   job first; each job is timed submit → succeeded by its own timestamps.

Each repeat runs 1, 2 and 3 back to back (the stack idle during 1 and 2), so the three rows of a model
see the same load on this shared machine; the best of `--repeats` counts for each.
Direct loops run in their own processes (peak RSS, VmHWM, is theirs); for the end-to-end rows the peak
RSS is the largest VmHWM among the worker's processes (read from /proc after its jobs). It checks, for
each finished job: every output line present and in input order; that the job's `metrics` carry the
batching stats; for text, that the batches were length-sorted under the token budget (the job's padded
token slots equal what `plan_batches` gives for the job's parts; file order would give many more); the
top label agrees with the fp32 naive loop on the first 200 records. Appends a section to
benchmarks/RESULTS.md and writes benchmarks/results/task_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
from e2e_distributed import server_seconds
from memory_flat import hwm_mib, tree
from stack import Stack

from inferq.client import Client, Job

SEED = 0
TEXT_MAX_LENGTH = 256  # as the embedding benchmarks truncate (minilm-l6's max_seq_length)
NAIVE_BATCH = 32
DIGITS = [common.ROOT / "examples" / "data" / f"digits-{s}.jsonl" for s in ("train", "test")]
CHECK_LABELS = 200

MODELS: dict[str, dict[str, str]] = {
    "text": {
        "task": "text-classification",
        "name": "bench-minilm-cls",
        "title": "text-classification, MiniLM-L6 + 2-label head (seeded)",
    },
    "cnn": {
        "task": "image-classification",
        "name": "bench-cnn-digits",
        "title": "image-classification, cnn-small trained on digits (32x32)",
    },
    "vit": {
        "task": "image-classification",
        "name": "bench-vit-tiny",
        "title": "image-classification, tiny ViT, random weights (224x224)",
    },
}
LOOPS = {
    "naive32": "naive direct loop: batch 32, file order, fp32",
    "inferq_auto": "inferq direct loop (run_predictions), auto precision",
    "e2e": "inferq end to end, 1 worker x 1 thread, submit → succeeded",
}


# -- inputs ----------------------------------------------------------------------------------------------


def digit_images(n: int) -> list[str]:
    """`n` base64 PNGs: scikit-learn's digits (examples/data/digits-{train,test}.jsonl), cycled."""
    base: list[str] = []
    for path in DIGITS:
        for line in path.read_text("utf-8").splitlines():
            if line.strip():
                base.append(json.loads(line)["image"])
    return [base[i % len(base)] for i in range(n)]


def inputs(kind: str, n: int) -> list[str]:
    return common.texts(n) if kind == "text" else digit_images(n)


def write_input(path: Path, kind: str, values: list[str]) -> Path:
    if kind == "text":
        return common.write_jsonl(path, values)
    with path.open("w", encoding="utf-8") as f:
        for i, image in enumerate(values):
            f.write(json.dumps({"id": f"r{i:07d}", "image": image}) + "\n")
    return path


def decode(values: list[str]) -> list[Any]:
    from inferq.worker.images import decode_base64_image

    return [decode_base64_image(v) for v in values]


def text_lengths(folder: Path, texts: list[str]) -> list[int]:
    """Tokens per text as the predictor counts them (truncated to TEXT_MAX_LENGTH)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    ids = tokenizer(texts, truncation=True, max_length=TEXT_MAX_LENGTH)["input_ids"]
    return [len(x) for x in ids]


# -- models ----------------------------------------------------------------------------------------------


def make_text_classifier(folder: Path) -> dict[str, Any]:
    """minilm-l6 with a new 2-label sequence-classification head, as a finetune-text train job builds it
    before its first step (seeded, untrained), saved the way the train job saves it."""
    import torch

    from inferq.shared.registry import builtin_path
    from inferq.worker.trainables import FINETUNE_TEXT, build_trainable

    torch.manual_seed(SEED)
    trainable = build_trainable(
        FINETUNE_TEXT,
        ["negative", "positive"],
        {"max_length": TEXT_MAX_LENGTH},
        base=builtin_path("minilm-l6"),
        architecture="",
        train_values=[],
    )
    trainable.save(folder)
    return {"head": f"random, seed {SEED} (untrained)"}


def make_cnn(folder: Path, epochs: int) -> dict[str, Any]:
    """cnn-small trained on digits-train for `epochs` epochs with the train job's trainable (cnn family
    defaults: AdamW lr 3e-3, weight decay 1e-4, batch 64, 32x32 input); held-out accuracy on digits-test."""
    import torch
    import torch.nn.functional as F

    from inferq.worker.trainables import CNN, build_trainable

    def load(path: Path) -> tuple[list[Any], list[str]]:
        rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
        return decode([r["image"] for r in rows]), [str(r["label"]) for r in rows]

    train_images, train_labels = load(DIGITS[0])
    test_images, test_labels = load(DIGITS[1])
    labels = sorted(set(train_labels))
    torch.manual_seed(SEED)
    trainable = build_trainable(
        CNN, labels, {"image_size": 32}, base=None, architecture="cnn-small", train_values=train_images
    )
    model = trainable.model
    features = trainable.encode(train_images)
    targets = torch.tensor([labels.index(label) for label in train_labels])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(SEED)
    started = time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(train_labels), generator=generator).tolist()
        for i in range(0, len(order), 64):
            idx = order[i : i + 64]
            logits = model(**trainable.collate(features, idx, torch.device("cpu"))).logits
            loss = F.cross_entropy(logits, targets[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.inference_mode():
        test = trainable.encode(test_images)
        predicted = model(pixel_values=test).logits.argmax(-1).tolist()
    accuracy = sum(labels[p] == t for p, t in zip(predicted, test_labels, strict=True)) / len(test_labels)
    trainable.save(folder)
    return {
        "epochs": epochs,
        "train_seconds": round(time.perf_counter() - started, 1),
        "held_out_accuracy": round(accuracy, 4),
    }


def make_vit(folder: Path) -> dict[str, Any]:
    """A tiny ViT image classifier (DeiT-tiny's width, half its depth) with random weights, 224x224."""
    import torch
    from transformers import (  # type: ignore[attr-defined]
        ViTConfig,
        ViTForImageClassification,
        ViTImageProcessor,
    )

    labels = [str(d) for d in range(10)]
    config = ViTConfig(
        hidden_size=192,
        num_hidden_layers=6,
        num_attention_heads=3,
        intermediate_size=768,
        image_size=224,
        patch_size=16,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(SEED)
    ViTForImageClassification(config).eval().save_pretrained(str(folder))
    ViTImageProcessor(
        size={"height": 224, "width": 224}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    ).save_pretrained(str(folder))
    return {"head": f"random, seed {SEED}"}


def build_model(kind: str, folder: Path, cnn_epochs: int) -> dict[str, Any]:
    """The model folder for `kind` (reused when it is already there, with the info saved beside it)."""
    info_path = folder / "bench_info.json"
    if (folder / "model.safetensors").is_file() and info_path.is_file():
        info: dict[str, Any] = json.loads(info_path.read_text())
        if kind != "cnn" or info.get("epochs") == cnn_epochs:
            return info
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "text":
        info = make_text_classifier(folder)
    elif kind == "cnn":
        info = make_cnn(folder, cnn_epochs)
    else:
        info = make_vit(folder)
    info_path.write_text(json.dumps(info))
    return info


# -- direct loops (each in its own process) ----------------------------------------------------------------


def _naive(kind: str, folder: Path, values: list[Any]) -> tuple[float, list[str]]:
    """Batches of NAIVE_BATCH in file order, fp32, the Auto classes; softmax and every label's score."""
    import torch

    from inferq.worker import nets

    nets.register()
    labels: list[str] = []
    if kind == "text":
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    else:
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        processor = AutoImageProcessor.from_pretrained(str(folder))
        model = AutoModelForImageClassification.from_pretrained(str(folder)).eval()
    names = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
    started = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(values), NAIVE_BATCH):
            chunk = values[i : i + NAIVE_BATCH]
            if kind == "text":
                batch = tokenizer(
                    chunk, padding=True, truncation=True, max_length=TEXT_MAX_LENGTH, return_tensors="pt"
                )
            else:
                batch = processor(chunk, return_tensors="pt")
            probs = torch.softmax(model(**batch).logits.float(), dim=-1)
            for row in probs.tolist():
                scores = {names[j]: p for j, p in enumerate(row)}
                labels.append(max(scores, key=lambda name: scores[name]))
    return time.perf_counter() - started, labels


def _inferq(
    kind: str, folder: Path, values: list[Any], batch_tokens: int, max_batch_size: int
) -> tuple[float, list[str], dict[str, Any]]:
    import torch

    from inferq.worker.inference import run_predictions
    from inferq.worker.predictors import load_predictor

    task = MODELS[kind]["task"]
    # The worker passes the registered version's config; `models import` records max_position_embeddings.
    config = {"max_length": 512} if kind == "text" else {}
    predictor = load_predictor(task, folder, torch.device("cpu"), config)
    started = time.perf_counter()
    result = run_predictions(
        predictor, values, {"precision": "auto"}, batch_tokens=batch_tokens, max_batch_size=max_batch_size
    )
    seconds = time.perf_counter() - started
    return seconds, [str(o["label"]) for o in result.outputs], result.stats


def run_child(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    kind, loop = args.child.split(":")
    folder = args.work_dir / "models" / kind
    raw = inputs(kind, args.records)
    values: list[Any] = raw if kind == "text" else decode(raw)  # images decoded before the clock starts
    stats: dict[str, Any] = {}
    if loop == "naive32":
        seconds, labels = _naive(kind, folder, values)
    else:
        seconds, labels, stats = _inferq(kind, folder, values, args.batch_tokens, args.max_batch_size)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so a child would report its parent's peak.
    rss = hwm_mib(os.getpid())
    out = {"seconds": seconds, "peak_rss_mib": round(rss, 1), "labels": labels[:CHECK_LABELS], "stats": stats}
    print(json.dumps(out))
    return 0


def measure(kind: str, loop: str, records: int, args: argparse.Namespace) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            f"{kind}:{loop}",
            "--records",
            str(records),
            "--threads",
            str(args.threads),
            "--work-dir",
            str(args.work_dir),
            "--batch-tokens",
            str(args.batch_tokens),
            "--max-batch-size",
            str(args.max_batch_size),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{kind}:{loop} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def one_direct(kind: str, loop: str, records: int, args: argparse.Namespace) -> dict[str, Any]:
    load = common.load_note()
    run = measure(kind, loop, records, args)
    run["load"] = load
    print(f"{kind}:{loop}: {run['seconds']:.2f}s rss {run['peak_rss_mib']} MiB load {load}", file=sys.stderr)
    return run


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run, with every run's time and the largest peak RSS."""
    out = dict(min(runs, key=lambda r: float(r["seconds"])))
    out["all_seconds"] = [round(float(r["seconds"]), 2) for r in runs]
    out["peak_rss_mib"] = max(float(r["peak_rss_mib"]) for r in runs)
    return out


# -- end to end ----------------------------------------------------------------------------------------------


def run_job(client: Client, task: str, model: str, file_id: str, poll: float = 0.5) -> tuple[float, Job]:
    """Submit, poll until the job ends; submit → end from the job's own timestamps."""
    job = client.submit(task=task, model=model, input_file=file_id, params={"precision": "auto"})
    while True:
        current = client.get(job.id)
        if current.status in ("succeeded", "failed", "cancelled", "expired"):
            return server_seconds(current.raw), current
        time.sleep(poll)


def worker_peak_mib(pid: int) -> float:
    """The largest peak RSS (VmHWM) among the worker's processes (main process and pool child)."""
    return max(hwm_mib(p) for p in tree(pid))


def read_output(client: Client, job_id: str, path: Path) -> tuple[int, bool, list[str]]:
    """Output lines, whether their ids are in input order, and the first CHECK_LABELS top labels."""
    out = client.download(job_id, path)
    ids: list[str] = []
    labels: list[str] = []
    with out.open("rb") as f:
        for line in f:
            row = json.loads(line)
            ids.append(row["id"])
            if len(labels) < CHECK_LABELS:
                labels.append(str(row["label"]))
    return len(ids), ids == [f"r{i:07d}" for i in range(len(ids))], labels


def part_stats(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The part_done events' stats, by part index."""
    parts = [e["data"] for e in events if e["kind"] == "part_done"]
    return sorted(parts, key=lambda p: int(p["part"]))


def expected_batching(
    lengths: list[int], parts: list[dict[str, Any]], batch_tokens: int, max_batch_size: int
) -> dict[str, Any]:
    """What the job's parts should report if each sorted its records by length under the token budget:
    the parts' record ranges follow from their token counts (contiguous, in order); within each, the
    padded token slots and batches of `plan_batches`, and of plain file-order batches of the same count."""
    from inferq.worker.batching import padded_tokens, plan_batches

    start = 0
    sorted_slots = sorted_batches = file_order_slots = 0
    for part in parts:
        want, total, end = int(part["tokens"]), 0, start
        while end < len(lengths) and total < want:
            total += lengths[end]
            end += 1
        chunk = lengths[start:end]
        plan = plan_batches(chunk, batch_tokens, max_batch_size)
        sorted_slots += padded_tokens(chunk, plan)
        sorted_batches += len(plan)
        size = max_batch_size
        in_order = [list(range(i, min(i + size, len(chunk)))) for i in range(0, len(chunk), size)]
        file_order_slots += padded_tokens(chunk, in_order)
        start = end
    return {
        "records": start,
        "padded_tokens": sorted_slots,
        "batches": sorted_batches,
        "file_order_padded_tokens": file_order_slots,
    }


def measure_model(
    stack: Stack, client: Client, kind: str, model_ref: str, records: int, args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """The three loops for one model. A fresh worker (its peak RSS is this model's) does a warm-up job;
    then each repeat runs the naive loop, inferq's direct loop and the end-to-end job back to back, so
    the three see the same load (the machine is shared)."""
    task = MODELS[kind]["task"]
    values = inputs(kind, records)
    work = args.work_dir
    name = f"worker-{kind}"
    proc = stack.worker(name)
    runs: dict[str, list[dict[str, Any]]] = {loop: [] for loop in LOOPS}
    try:
        file_id = client.upload(write_input(work / f"{kind}-input.jsonl", kind, values)).id
        warm_file = client.upload(write_input(work / f"{kind}-warm.jsonl", kind, values[:100])).id
        warm_seconds, warm = run_job(client, task, model_ref, warm_file)
        if warm.status != "succeeded":
            raise RuntimeError(f"warm-up job {warm.status}: {warm.raw}")
        for _ in range(args.repeats):
            common.wait_for_quiet(max_wait=30)
            for loop in ("naive32", "inferq_auto"):
                runs[loop].append(one_direct(kind, loop, records, args))
            load = common.load_note()
            seconds, job = run_job(client, task, model_ref, file_id)
            print(f"{kind}:e2e: {seconds:.2f}s {job.status} load {load}", file=sys.stderr)
            if job.status != "succeeded":
                raise RuntimeError(f"job {job.status}: {job.raw}")
            runs["e2e"].append({"seconds": seconds, "job": job.id, "load": load, "peak_rss_mib": 0.0})
        peak = worker_peak_mib(proc.pid)
    finally:
        stack.stop(name)
    result = {loop: best(runs[loop]) for loop in LOOPS}
    e2e = result["e2e"]
    lines, in_order, labels = read_output(client, e2e["job"], work / f"{kind}-output.jsonl")
    e2e.update(
        peak_rss_mib=round(peak, 1),
        warm_seconds=round(warm_seconds, 2),
        metrics=client.get(e2e["job"]).raw.get("metrics") or {},
        parts=part_stats(client.events(e2e["job"])),
        lines=lines,
        in_order=in_order,
        labels=labels,
    )
    return result


# -- report ----------------------------------------------------------------------------------------------


def agreement(a: Sequence[str], b: Sequence[str]) -> float:
    n = min(len(a), len(b))
    return sum(x == y for x, y in zip(a[:n], b[:n], strict=True)) / n if n else 0.0


def file_order_padding(lengths: list[int]) -> float:
    from inferq.worker.batching import padding_ratio

    chunks = [list(range(i, min(i + NAIVE_BATCH, len(lengths)))) for i in range(0, len(lengths), NAIVE_BATCH)]
    return padding_ratio(lengths, chunks)


def report(
    kind: str, records: int, tokens: int | None, r: dict[str, dict[str, Any]]
) -> tuple[list[str], str]:
    rows: list[str] = []
    rate = {loop: records / float(r[loop]["seconds"]) for loop in LOOPS}
    for loop in LOOPS:
        run = r[loop]
        tok = f"{tokens / float(run['seconds']):.0f}" if tokens else "—"
        rows.append(
            f"| {MODELS[kind]['title']} | {LOOPS[loop]} | {records} | {rate[loop]:.1f} | {tok} "
            f"| {run['padding']} | {run['batches']} | {run['precision']} "
            f"| {float(run['peak_rss_mib']):.0f} MiB "
            f"| {run['all_seconds']} s | {run['load']} |"
        )
    ratios = (
        f"{kind}: end to end / naive = **{rate['e2e'] / rate['naive32']:.2f}x**, "
        "end to end / inferq direct = "
        f"**{rate['e2e'] / rate['inferq_auto']:.2f}x**, inferq direct / naive = "
        f"{rate['inferq_auto'] / rate['naive32']:.2f}x"
    )
    return rows, ratios


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2000, help="records for text and cnn")
    parser.add_argument("--vit-records", type=int, default=320, help="records for the ViT (0: skip it)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, loops and worker (0: default)")
    parser.add_argument("--cnn-epochs", type=int, default=5)
    parser.add_argument("--models", default="text,cnn,vit")
    parser.add_argument("--work-dir", type=Path, default=common.ROOT / "benchmarks" / ".work" / "tasks")
    parser.add_argument("--no-append", action="store_true", help="print, do not append to RESULTS.md")
    parser.add_argument("--batch-tokens", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--max-batch-size", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return run_child(args)

    import torch

    from inferq.shared.settings import Settings
    from inferq.worker.inference import batching_for

    defaults = Settings.from_env({})
    args.batch_tokens, args.max_batch_size = batching_for(
        torch.device("cpu"), defaults.batch_tokens, defaults.max_batch_size
    )
    kinds = [k for k in args.models.split(",") if k and not (k == "vit" and args.vit_records == 0)]
    counts = {k: args.vit_records if k == "vit" else args.records for k in kinds}
    models_dir = args.work_dir / "models"
    info = {kind: build_model(kind, models_dir / kind, args.cnn_epochs) for kind in kinds}
    print(f"models: {info}", file=sys.stderr)

    # Per model: a fresh worker; each repeat runs the two direct loops and the end-to-end job back to back.
    env = {"INFERQ_TORCH_THREADS": str(args.threads)} if args.threads else {}
    results: dict[str, dict[str, dict[str, Any]]] = {}
    with Stack(args.work_dir / "stack", extra_env=env) as stack:
        stack.serve()
        client = Client(stack.url, stack.key, timeout=600)
        for kind in kinds:
            folder, spec = str(models_dir / kind), MODELS[kind]
            ref = stack.cli(
                [
                    "models",
                    "import",
                    folder,
                    "--name",
                    spec["name"],
                    "--task",
                    spec["task"],
                    "--tenant",
                    "bench",
                ]
            ).strip()
            results[kind] = measure_model(stack, client, kind, ref, counts[kind], args)

    # 3. checks and the report
    rows: list[str] = []
    notes: list[str] = []
    ok = True
    summary: dict[str, Any] = {"threads": args.threads, "batch_tokens": args.batch_tokens}
    for kind in kinds:
        r = results[kind]
        n = counts[kind]
        e2e = r["e2e"]
        metrics = e2e["metrics"]
        tokens: int | None = None
        if kind == "text":
            lengths = text_lengths(models_dir / kind, inputs(kind, n))
            tokens = sum(lengths)
            want = expected_batching(lengths, e2e["parts"], args.batch_tokens, args.max_batch_size)
            sorted_ok = (
                want["records"] == n
                and metrics.get("padded_tokens") == want["padded_tokens"]
                and metrics.get("batches") == want["batches"]
                and metrics.get("tokens") == tokens
            )
            naive_padding = f"{file_order_padding(lengths):.4f} (file order)"
            check = (
                f"text: job metrics {json.dumps(metrics)}; length-sorted token-budget batching "
                f"{'verified' if sorted_ok else 'NOT verified'}: the job ran {metrics.get('padded_tokens')} "
                f"token slots in {metrics.get('batches')} batches over {len(e2e['parts'])} parts, "
                f"`plan_batches` over the same parts gives {want['padded_tokens']} in {want['batches']}; "
                f"file-order batches of {args.max_batch_size} would run {want['file_order_padded_tokens']}."
            )
        else:
            per_part = [int(p.get("batches") or 0) for p in e2e["parts"]]
            part_records = [int(p.get("tokens") or 0) for p in e2e["parts"]]
            want_batches = sum(math.ceil(c / args.max_batch_size) for c in part_records)
            sorted_ok = (
                "batches" in metrics
                and "padding_ratio" in metrics
                and metrics.get("batches") == want_batches == sum(per_part)
                and sum(part_records) == n
            )
            naive_padding = "0 (fixed size)"
            check = (
                f"{kind}: job metrics {json.dumps(metrics)}; batch stats "
                f"{'present and as planned' if sorted_ok else 'MISSING or unexpected'}: "
                f"{metrics.get('batches')} batches over {len(e2e['parts'])} parts of {part_records} images "
                f"(every image is one 'token' to the planner, so batches are the cap, {args.max_batch_size})."
            )
        ok = ok and sorted_ok and e2e["lines"] == n and e2e["in_order"]
        agree = agreement(e2e["labels"], r["naive32"]["labels"])
        agree_direct = agreement(r["inferq_auto"]["labels"], r["naive32"]["labels"])
        r["naive32"].update(padding=naive_padding, batches=math.ceil(n / NAIVE_BATCH), precision="fp32")
        st = r["inferq_auto"]["stats"]
        r["inferq_auto"].update(
            padding=f"{st['padding_ratio']:.4f}", batches=st["batches"], precision=st["precision"]
        )
        e2e.update(
            padding=f"{metrics.get('padding_ratio', '—')}",
            batches=metrics.get("batches", "—"),
            precision=metrics.get("precision", "—"),
        )
        task_rows, ratios = report(kind, n, tokens, r)
        rows += task_rows
        notes.append(ratios + ".")
        notes.append(
            f"{check} Output: {e2e['lines']} lines, in input order: {e2e['in_order']}; "
            f"top label = fp32 naive loop's on the first {CHECK_LABELS}: {agree:.1%} end to end, "
            f"{agree_direct:.1%} inferq direct. "
            f"Warm-up job (100 records, model load included): {e2e['warm_seconds']} s."
        )
        summary[kind] = {
            "records": n,
            "tokens": tokens,
            "model": info[kind],
            **{loop: {k: v for k, v in r[loop].items() if k not in ("labels", "parts")} for loop in LOOPS},
        }
    breakdown = "; ".join(
        f"{kind}: "
        + ", ".join(
            f"{k}={round(sum(float(p.get(k) or 0) for p in results[kind]['e2e']['parts']), 2)}"
            for k in (
                "read_seconds",
                "parse_seconds",
                "preprocess_seconds",
                "forward_seconds",
                "total_seconds",
            )
        )
        for kind in kinds
    )
    head = [
        f"Same inputs for the three rows of a model: {args.records} texts of {common.texts_file().name} "
        f"(cycled, truncated to {TEXT_MAX_LENGTH} tokens, as in the embedding sections) and {args.records} "
        f"digits (base64 PNG, train + test cycled) for the CNN, {args.vit_records} for the ViT; "
        f"torch threads {args.threads or 'default'} in the loops and the worker; inferq batching = the "
        f"CPU default (batch_tokens={args.batch_tokens}, max_batch_size={args.max_batch_size}); "
        f"best of {args.repeats}. "
        "Naive loops: Hugging Face Auto classes, tokenizer / image processor included in the time; images "
        "are decoded from PNG before the clock in both direct loops (end to end includes everything).",
        "Models, registered with `inferq models import`: "
        + "; ".join(f"{MODELS[k]['name']} ({MODELS[k]['title']}): {json.dumps(info[k])}" for k in kinds)
        + ". Peak RSS: the loop's own process; end to end, the largest process of a fresh worker that "
        "ran only that model's jobs.",
    ]
    parts_note = f"Per-part time, summed over the best job's parts (part_done events): {breakdown}."
    header = (
        "| model | loop | records | records/s | tokens/s | padding ratio | batches | precision | peak RSS "
        "| runs | load before |"
    )
    title = "Classification and image jobs: direct loops vs end to end (issue #6)"
    if args.no_append:
        print("\n".join([title, *head, *notes, parts_note, header, *rows]))
    else:
        out = common.ROOT / "benchmarks" / "results"
        out.mkdir(exist_ok=True)
        (out / "task_throughput.json").write_text(json.dumps(summary, indent=1, default=str))
        common.append_results(title, header, rows, [*head, *notes, parts_note])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
