"""Write scikit-learn's bundled 8x8 digits (BSD-3-Clause; the UCI optical recognition of handwritten
digits set) as JSONL files of base64 PNG images: a seeded 80/20 split into
`examples/data/digits-train.jsonl` and `examples/data/digits-test.jsonl`. Deterministic: the same bytes
every run.
"""

from __future__ import annotations

import base64
import io
import json
import random
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
SEED = 0
TEST_FRACTION = 0.2


def png(pixels: list[list[float]]) -> str:
    from PIL import Image

    image = Image.new("L", (8, 8))
    image.putdata([round(v * 255 / 16) for row in pixels for v in row])
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return base64.b64encode(buf.getvalue()).decode()


def main() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = list(range(len(digits.target)))
    random.Random(SEED).shuffle(order)
    cut = int(len(order) * (1 - TEST_FRACTION))
    DATA.mkdir(parents=True, exist_ok=True)
    for name, idx in (("digits-train.jsonl", order[:cut]), ("digits-test.jsonl", order[cut:])):
        with (DATA / name).open("w", encoding="utf-8") as f:
            for i in idx:
                row = {
                    "id": f"digit-{i}",
                    "image": png(digits.images[i].tolist()),
                    "label": str(digits.target[i]),
                }
                f.write(json.dumps(row) + "\n")
        print(f"wrote {DATA / name} ({len(idx)} images)")


if __name__ == "__main__":
    main()
