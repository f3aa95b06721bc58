"""Small labelled files for training and evaluation tests: deterministic, separable by a word or two."""

from __future__ import annotations

import base64
import io
import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

POSITIVE = ["good", "great", "love", "excellent", "fun", "happy", "loved", "fine"]
NEGATIVE = ["bad", "terrible", "hate", "awful", "boring", "sad", "hated", "slow"]
FILLER = ["the", "movie", "film", "book", "food", "service", "was", "is", "really", "very", "it", "this"]


def sentiment_rows(n: int, seed: int = 0, labels: tuple[str, str] = ("pos", "neg")) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = labels[i % 2]
        words = POSITIVE if label == labels[0] else NEGATIVE
        text = " ".join([*rng.sample(FILLER, 4), rng.choice(words), rng.choice(words)])
        rows.append({"id": f"r{i}", "text": text, "label": label})
    return rows


def write_jsonl(
    path: Path, rows: Sequence[Mapping[str, object]], extra_lines: list[str] | None = None
) -> Path:
    lines = [json.dumps(r, ensure_ascii=False) for r in rows] + list(extra_lines or [])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def png_base64(pixels: list[list[int]]) -> str:
    """A grayscale PNG of `pixels` (rows of 0..255), base64."""
    from PIL import Image

    h, w = len(pixels), len(pixels[0])
    image = Image.new("L", (w, h))
    image.putdata([v for row in pixels for v in row])
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def stripe_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    """8x8 images: horizontal stripes ("h") or vertical stripes ("v"), with a little noise."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "h" if i % 2 == 0 else "v"
        pixels = [
            [
                min(
                    255, max(0, (230 if ((r if label == "h" else c) % 2 == 0) else 20) + rng.randint(-20, 20))
                )
                for c in range(8)
            ]
            for r in range(8)
        ]
        rows.append({"id": f"img{i}", "image": png_base64(pixels), "label": label})
    return rows
