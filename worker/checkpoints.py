"""Training checkpoints in storage, one per finished epoch, at deterministic keys under the job's prefix.

`t/{tenant}/jobs/{job}/checkpoints/epoch-NNNN/` holds a Hugging Face folder (config, tokenizer or image
processor, `model.safetensors`) and `training_state.pt` (optimizer, scheduler, RNG states, epoch,
history). The state file is written last, so a checkpoint without it is incomplete and ignored. It is
read back with `torch.load(weights_only=True)`: tensors and plain containers only, never code.
"""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from inferq.shared import keys
from inferq.shared.storage import Storage

log = logging.getLogger(__name__)

STATE_FILE = "training_state.pt"
_EPOCH_RE = re.compile(r"epoch-(\d{4})/" + re.escape(STATE_FILE) + "$")


def save_checkpoint(
    storage: Storage, tenant_id: str, job_id: str, epoch: int, folder: Path, state: dict[str, Any]
) -> str:
    """Upload the saved model `folder` and the training `state` as the checkpoint after `epoch`."""
    prefix = keys.checkpoint_prefix(tenant_id, job_id, epoch)
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != STATE_FILE):
        with file.open("rb") as f:
            storage.put_stream(prefix + file.relative_to(folder).as_posix(), f)
    with tempfile.TemporaryDirectory(prefix="inferq-state-") as tmp:
        path = Path(tmp) / STATE_FILE
        torch.save(state, path)
        with path.open("rb") as f:
            storage.put_stream(prefix + STATE_FILE, f)
    return prefix


def latest_epoch(storage: Storage, tenant_id: str, job_id: str) -> int | None:
    """The last epoch whose checkpoint is complete, or None."""
    epochs = []
    for key in storage.list(keys.checkpoints_prefix(tenant_id, job_id)):
        m = _EPOCH_RE.search(key)
        if m:
            epochs.append(int(m.group(1)))
    return max(epochs) if epochs else None


def load_checkpoint(storage: Storage, tenant_id: str, job_id: str, epoch: int, dest: Path) -> dict[str, Any]:
    """Download the checkpoint after `epoch` into `dest` (its model folder) and return its state."""
    prefix = keys.checkpoint_prefix(tenant_id, job_id, epoch)
    for key in storage.list(prefix):
        storage.download_to(key, dest / key[len(prefix) :])
    state: dict[str, Any] = torch.load(dest / STATE_FILE, weights_only=True, map_location="cpu")
    (dest / STATE_FILE).unlink()
    return state


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
