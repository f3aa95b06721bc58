"""Peak memory of one part of large images, parsed and predicted as a worker does, in its own process.

    python -m tests.helpers.image_memory MODEL_FOLDER RECORDS SIDE

prints JSON: {"records", "outputs", "errors", "baseline_mib", "peak_mib", "delta_mib"}. The peak is the
process's VmHWM after it was reset (/proc/self/clear_refs) once the model was loaded and the input
built, so the delta is what parsing and predicting the part added.
"""

from __future__ import annotations

import gc
import json
import sys
import tempfile
from pathlib import Path


def _status_kib(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {name} in /proc/self/status")


def measure(model_dir: Path, records: int, side: int) -> dict[str, float]:
    import torch

    from inferq.shared.storage import LocalStorage
    from inferq.worker.inference import run_predictions
    from inferq.worker.predictors import load_predictor
    from inferq.worker.task_formatter import TaskFormatter
    from tests.helpers.hostile_images import b64, solid_png

    torch.set_num_threads(1)
    predictor = load_predictor("image-classification", model_dir, torch.device("cpu"), {})
    image = b64(solid_png(side, side))
    data = "".join(json.dumps({"id": f"r{i}", "image": image}) + "\n" for i in range(records)).encode()
    formatter = TaskFormatter("image-classification", "ten_m", LocalStorage(Path(tempfile.mkdtemp())), False)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    baseline = _status_kib("VmRSS")
    parsed, errors = formatter.parse(data, "jsonl", first_line=1, first_record=0, header=None)
    result = run_predictions(
        predictor, formatter.inputs(parsed).values, {}, batch_tokens=2048, max_batch_size=32
    )
    peak = _status_kib("VmHWM")
    return {
        "records": records,
        "outputs": len(result.outputs),
        "errors": len(errors),
        "baseline_mib": round(baseline / 1024, 1),
        "peak_mib": round(peak / 1024, 1),
        "delta_mib": round((peak - baseline) / 1024, 1),
    }


if __name__ == "__main__":
    folder, n, side = sys.argv[1:4]
    print(json.dumps(measure(Path(folder), int(n), int(side))))
