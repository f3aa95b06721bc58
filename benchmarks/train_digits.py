"""Benchmark: the project's CNN trained by a train job on scikit-learn's 8x8 digits, scored by an evaluate
job on the held-out 20% (examples/make_digits.py). Runs `inferq up` on the embedded default in a temp dir.

    .venv/bin/python benchmarks/train_digits.py [--epochs N] [--threads N]

Prints one JSON line: train seconds (submit to succeeded), held-out accuracy and macro-F1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

from demo import create_key, free_port, start_server, stop_server, wait_ready  # noqa: E402

from inferq.client import Client  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    train_path = ROOT / "examples/data/digits-train.jsonl"
    test_path = ROOT / "examples/data/digits-test.jsonl"
    with tempfile.TemporaryDirectory(prefix="inferq-bench-") as tmp:
        env = {**os.environ, "INFERQ_DATA_DIR": tmp, "INFERQ_TORCH_THREADS": str(args.threads)}
        os.environ.update(env)
        port = free_port()
        proc = start_server(port, env, Path(tmp) / "up.log")
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url, proc)
            with Client(url, create_key(env), timeout=60) as client:
                training = client.upload(train_path, purpose="training")
                started = time.monotonic()
                job = client.train(
                    task="image-classification",
                    training_file=training.id,
                    model_name="digits",
                    hyperparameters={"epochs": args.epochs},
                )
                trained = client.wait(job.id, timeout=1800)
                train_seconds = time.monotonic() - started
                assert trained.succeeded, trained
                held_out = client.upload(test_path, purpose="input")
                scored = client.wait(
                    client.evaluate(task="image-classification", model="digits", input_file=held_out.id).id,
                    timeout=600,
                )
                assert scored.succeeded and scored.metrics, scored
        finally:
            stop_server(proc)
    print(
        json.dumps(
            {
                "benchmark": "cnn-small on sklearn digits (held-out 20%)",
                "epochs": args.epochs,
                "train_seconds": round(train_seconds, 1),
                "held_out_accuracy": scored.metrics["accuracy"],
                "held_out_macro_f1": scored.metrics["macro_f1"],
                "validation_accuracy": (trained.metrics or {}).get("accuracy"),
                "machine": f"{platform.machine()} {os.cpu_count()} cpus, torch threads {args.threads}",
            }
        )
    )


if __name__ == "__main__":
    main()
