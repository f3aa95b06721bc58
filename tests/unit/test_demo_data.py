"""The demo's input files: enough real sentences, a few broken lines, and a CSV with quoting."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
SENTENCES = DATA / "sentences.jsonl"
REVIEWS = DATA / "reviews.csv"
BUILT_WITH = (3, 11, 7)  # the CPython whose pydoc_data built the committed files (see README.md)


def parse(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def lines() -> list[str]:
    return SENTENCES.read_text(encoding="utf-8").splitlines()


def usable(record: dict[str, Any] | None) -> bool:
    return record is not None and isinstance(record.get("text"), str) and bool(record["text"].strip())


def load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_sentences", DATA / "make_sentences.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sentences_has_at_least_1000_usable_records() -> None:
    # given the demo input
    # when every line is parsed
    records = [parse(line) for line in lines()]
    good = [r for r in records if usable(r)]
    # then at least 1,000 are records with a text
    assert len(good) >= 1000


def test_sentences_has_a_few_broken_lines_of_each_kind() -> None:
    # given the demo input
    records = [parse(line) for line in lines()]
    # when looking for lines that cannot serve
    not_json = [r for r in records if r is None]
    no_text = [r for r in records if r is not None and "text" not in r]
    wrong_type = [r for r in records if r is not None and "text" in r and not isinstance(r["text"], str)]
    # then each kind is there, and only a few of them
    assert not_json and no_text and wrong_type
    assert any(r is not None and r.get("text") == 12 for r in wrong_type)
    assert len(not_json) + len(no_text) + len(wrong_type) <= 10


def test_ids_are_unique_and_every_line_is_one_record() -> None:
    # given the demo input
    text = SENTENCES.read_text(encoding="utf-8")
    records = [r for r in (parse(line) for line in text.splitlines()) if r is not None]
    # when collecting ids
    ids = [r["id"] for r in records if "id" in r]
    # then they are unique strings, one per line, with no blank lines
    assert len(ids) == len(set(ids))
    assert all(isinstance(i, str) and i.startswith("s") for i in ids)
    assert text.endswith("\n") and "\n\n" not in text


def test_sentences_are_5_to_80_words_with_a_few_long_passages() -> None:
    # given the usable records
    texts = [r["text"] for r in (parse(line) for line in lines()) if usable(r) and r is not None]
    # when counting words
    words = [len(t.split()) for t in texts]
    # then nearly all are 5-80 words, of mixed lengths, and a few passages are long (> 256 tokens)
    long_passages = [n for n in words if n > 80]
    assert 3 <= len(long_passages) <= 10
    assert all(n >= 250 for n in long_passages)
    assert min(words) >= 5
    assert len({n // 10 for n in words if n <= 80}) >= 5
    assert len({t.casefold() for t in texts}) == len(texts)


def test_reviews_csv_has_quoted_commas_and_a_multiline_field() -> None:
    # given the CSV
    with REVIEWS.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    # then it has the header, about 50 rows, commas inside fields and one field over two lines
    assert header == ["id", "text"]
    assert 40 <= len(rows) <= 60
    assert all(len(row) == 2 for row in rows)
    assert sum("," in text for _, text in rows) >= 5
    assert sum("\n" in text for _, text in rows) == 1
    assert len({rid for rid, _ in rows}) == len(rows)


@pytest.mark.skipif(sys.version_info[:3] != BUILT_WITH, reason="pydoc_data differs between Python versions")
def test_make_sentences_rebuilds_the_committed_files(tmp_path: Path) -> None:
    # given the build script
    builder = load_builder()
    # when it writes into an empty folder
    assert builder.main(["--out-dir", str(tmp_path)]) == 0
    # then the files are byte-identical to the committed ones
    assert (tmp_path / "sentences.jsonl").read_bytes() == SENTENCES.read_bytes()
    assert (tmp_path / "reviews.csv").read_bytes() == REVIEWS.read_bytes()
