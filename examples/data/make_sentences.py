"""Rebuild `sentences.jsonl` and `reviews.csv` from the prose of the Python Language Reference.

The text comes from `pydoc_data.topics`, which ships with CPython: the reference documentation
that `help("if")` shows, written by the Python developers and distributed under the PSF License
(see README.md beside this file). The script is deterministic: the same interpreter version gives
byte-identical files. Run it with `python examples/data/make_sentences.py`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent

MIN_WORDS = 5
MAX_WORDS = 80
SENTENCES = 1500
PASSAGE_MIN_WORDS = 260
# Topics whose opening prose is joined into one long passage (> 256 model tokens) each.
PASSAGE_TOPICS = ("exceptions", "execmodel", "import", "objects", "naming")
REVIEWS = 50

_HEADING = re.compile(r"^(\*+|=+|-+|~+|\^+)$")
_SKIP_START = (
    "-[",
    "[",
    "Note:",
    "See also",
    "Changed in version",
    "New in version",
    "Added in version",
    "Deprecated since",
    "Deprecated",
    "Footnotes",
    ">>>",
    "...",
)
_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"“(])")
_ABBREVIATIONS = {"e.g.", "i.e.", "etc.", "vs.", "cf.", "Mr.", "Dr.", "No.", "al."}
_FOOTNOTE = re.compile(r"\s*\[\d+\]")


def topics() -> dict[str, str]:
    from pydoc_data.topics import topics as all_topics

    return dict(all_topics)


def paragraphs(text: str) -> Iterator[str]:
    """Prose paragraphs of one topic: unindented blocks that are not headings, lists or notes."""
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.strip():
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    for block in blocks:
        if not block:
            continue
        indents = {len(line) - len(line.lstrip()) for line in block}
        if len(indents) != 1 or "\t" in block[0][: min(indents)]:
            continue
        block = [line.strip() for line in block]
        if any(line.startswith(("|", "+-", "+=")) for line in block):
            continue  # a table
        if len(block) > 1 and _HEADING.match(block[-1].strip()):
            continue
        first = block[0].lstrip()
        if first.startswith(_SKIP_START) or re.match(r"^(\*|\d+\.|[a-z]\))\s", first):
            continue
        joined = " ".join(line.strip() for line in block)
        if "::=" in joined or ">>>" in joined:
            continue
        yield _FOOTNOTE.sub("", re.sub(r"\s+", " ", joined)).strip()


def split_sentences(paragraph: str) -> list[str]:
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(paragraph):
        before = paragraph[start : match.start()]
        last_word = before.rsplit(" ", 1)[-1]
        if last_word in _ABBREVIATIONS or re.fullmatch(r"[A-Z]\.", last_word):
            continue
        sentences.append(before.strip())
        start = match.end()
    sentences.append(paragraph[start:].strip())
    return [s for s in sentences if s]


def is_clean(sentence: str) -> bool:
    words = sentence.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return False
    if not (sentence[0].isupper() or sentence[0] in '"“') or sentence[-1] not in ".!?":
        return False
    if sentence.count("(") != sentence.count(")") or sentence.count('"') % 2:
        return False
    if sentence.count("“") != sentence.count("”"):
        return False
    # Leftovers of markup or code rather than prose.
    return not any(token in sentence for token in ("::", "->", "\\", "  ", "\t", " | ", "+--"))


def collect_sentences(all_topics: dict[str, str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for name in sorted(all_topics):
        for paragraph in paragraphs(all_topics[name]):
            for sentence in split_sentences(paragraph):
                key = sentence.casefold()
                if is_clean(sentence) and key not in seen:
                    seen.add(key)
                    out.append(sentence)
    return out


def spread(items: Sequence[str], count: int) -> list[str]:
    """`count` items evenly spaced over `items`, in their order (all of them if there are fewer)."""
    if len(items) <= count:
        return list(items)
    return [items[i * len(items) // count] for i in range(count)]


def passages(all_topics: dict[str, str]) -> list[str]:
    out: list[str] = []
    for name in PASSAGE_TOPICS:
        parts: list[str] = []
        for paragraph in paragraphs(all_topics[name]):
            parts.append(paragraph)
            if len(" ".join(parts).split()) >= PASSAGE_MIN_WORDS:
                break
        text = " ".join(parts)
        if len(text.split()) >= PASSAGE_MIN_WORDS:
            out.append(text)
    return out


def broken_line(kind: int, record_id: str) -> str:
    """Lines a real upload may contain; each must become one per-record error, not a failed job."""
    if kind == 0:
        return '{"id": "' + record_id + '", "text": "This line was cut off in the middle of a wri'
    if kind == 1:
        return "this line is not JSON at all, just text someone pasted"
    if kind == 2:
        return json.dumps({"id": record_id, "body": "The field is named body instead of text."})
    return json.dumps({"id": record_id, "text": 12})


def build_jsonl(sentences: list[str], long_passages: list[str]) -> str:
    # Long passages and broken lines at fixed, spread-out positions among the sentences.
    passage_at = {
        (i + 1) * len(sentences) // (len(long_passages) + 1): p for i, p in enumerate(long_passages)
    }
    broken_at = {len(sentences) * k // 5 + 7: k - 1 for k in range(1, 5)}
    lines: list[str] = []

    def next_id() -> str:
        return f"s{len(lines) + 1:04d}"

    for index, sentence in enumerate(sentences):
        if index in broken_at:
            lines.append(broken_line(broken_at[index], next_id()))
        if index in passage_at:
            lines.append(json.dumps({"id": next_id(), "text": passage_at[index]}, ensure_ascii=False))
        lines.append(json.dumps({"id": next_id(), "text": sentence}, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def build_csv(sentences: list[str]) -> str:
    with_commas = [s for s in sentences if "," in s and len(s.split()) <= 40]
    without = [s for s in sentences if "," not in s and len(s.split()) <= 40]
    chosen = spread(with_commas, REVIEWS // 2) + spread(without, REVIEWS - REVIEWS // 2 - 1)
    rows = [chosen[i // 2] if i % 2 == 0 else chosen[REVIEWS // 2 + i // 2] for i in range(len(chosen))]
    # One field spans two physical lines, as spreadsheets export multi-line cells.
    multi = f"{without[-1]}\n{without[-2]}"
    rows.insert(len(rows) // 2, multi)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "text"])
    for i, text in enumerate(rows, start=1):
        writer.writerow([f"r{i:03d}", text])
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out-dir", type=Path, default=HERE)
    args = parser.parse_args(argv)
    all_topics = topics()
    sentences = spread(collect_sentences(all_topics), SENTENCES)
    long_passages = passages(all_topics)
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sentences.jsonl").write_text(build_jsonl(sentences, long_passages), encoding="utf-8")
    (out_dir / "reviews.csv").write_text(build_csv(sentences), encoding="utf-8")
    version = ".".join(map(str, sys.version_info[:3]))
    print(
        f"wrote {len(sentences)} sentences and {len(long_passages)} passages to "
        f"{out_dir / 'sentences.jsonl'}, {REVIEWS} rows to {out_dir / 'reviews.csv'} (Python {version})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
