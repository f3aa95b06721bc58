"""Test inputs made from the shipped demo sentences, and the model run directly for reference."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from inferq.shared.registry import builtin_path

SENTENCES = Path(__file__).resolve().parents[2] / "examples" / "data" / "sentences.jsonl"


def real_sentences(n: int) -> list[str]:
    texts = []
    for line in SENTENCES.read_text("utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("text"), str):
            texts.append(rec["text"])
        if len(texts) == n:
            break
    return texts


BROKEN = ['{"id": "broken-json", "text": ', '{"id": "no-text"}', '{"id": "wrong-type", "text": 12}', "[1, 2]"]


def write_mixed_input(
    path: Path, records: int, broken_every: int
) -> tuple[Path, list[tuple[str, str]], list[int]]:
    """A JSONL file of real sentences with a broken line every `broken_every` lines.

    Returns the path, the good (id, text) pairs in order, and the 1-based line numbers of broken lines.
    """
    good: list[tuple[str, str]] = []
    bad_lines: list[int] = []
    lines: list[str] = []
    texts = iter(real_sentences(records))
    while len(good) < records:
        line_no = len(lines) + 1
        if line_no % broken_every == 0:
            lines.append(BROKEN[len(bad_lines) % len(BROKEN)])
            bad_lines.append(line_no)
            continue
        text = next(texts)
        rid = f"r{len(good):05d}"
        good.append((rid, text))
        lines.append(json.dumps({"id": rid, "text": text}))
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path, good, bad_lines


@functools.lru_cache(maxsize=2)
def _sentence_transformer() -> object:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(builtin_path("minilm-l6")), device="cpu")


def reference_embeddings(texts: list[str]) -> np.ndarray:
    model = _sentence_transformer()
    return np.asarray(model.encode(texts, batch_size=32, normalize_embeddings=True), dtype=np.float32)  # type: ignore[attr-defined]
