"""Models loaded once per worker process and kept in an LRU keyed by model version, task and device."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from inferq.shared.registry import ResolvedModel, builtin_path
from inferq.shared.storage import Storage

if TYPE_CHECKING:
    from inferq.worker.predictors.base import Predictor

log = logging.getLogger(__name__)


def local_model_dir(model: ResolvedModel, storage: Storage, cache_dir: Path) -> Path:
    """A local folder with the model's files: the package folder for built-ins, else a disk cache."""
    if model.builtin:
        return builtin_path(model.name)
    target = cache_dir / model.cache_key
    if (target / ".complete").exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".download-"))
    try:
        for key in storage.list(model.source):
            rel = key[len(model.source) :]
            storage.download_to(key, tmp / rel)
        (tmp / ".complete").touch()
        try:
            tmp.rename(target)
        except OSError:
            # Another process finished the same download first: use theirs.
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("cached model %s in %s", model.ref, target)
    return target


class ModelCache:
    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str, str], Predictor] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, model: ResolvedModel, task: str, storage: Storage, cache_dir: Path, device: str
    ) -> Predictor:
        import torch

        from inferq.worker.predictors import load_predictor

        key = (model.cache_key, task, device)
        with self._lock:
            predictor = self._items.get(key)
            if predictor is not None:
                self._items.move_to_end(key)
                return predictor
            folder = local_model_dir(model, storage, cache_dir)
            predictor = load_predictor(task, folder, torch.device(device), dict(model.config))
            self._items[key] = predictor
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            log.info("loaded model %s for %s on %s", model.ref, task, device)
            return predictor
