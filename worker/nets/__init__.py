"""Model architectures defined in this project, saved and loaded as Hugging Face folders (safetensors).

`register()` tells transformers' Auto classes about them, so `AutoModelForSequenceClassification` /
`AutoModelForImageClassification.from_pretrained(folder)` load them like any other model, without
remote code: the classes live here, not in the folder.
"""

from __future__ import annotations

import threading

from transformers import AutoConfig, AutoModelForImageClassification, AutoModelForSequenceClassification

from inferq.worker.nets.image_cnn import SmallCnnConfig, SmallCnnForImageClassification
from inferq.worker.nets.ngram_bag import NgramBagConfig, NgramBagForSequenceClassification
from inferq.worker.nets.text_cnn import TextCnnConfig, TextCnnForSequenceClassification

_lock = threading.Lock()
_registered = False


def register() -> None:
    """Register the project's architectures with transformers (idempotent)."""
    global _registered
    with _lock:
        if _registered:
            return
        AutoConfig.register(TextCnnConfig.model_type, TextCnnConfig)
        AutoModelForSequenceClassification.register(TextCnnConfig, TextCnnForSequenceClassification)
        AutoConfig.register(NgramBagConfig.model_type, NgramBagConfig)
        AutoModelForSequenceClassification.register(NgramBagConfig, NgramBagForSequenceClassification)
        AutoConfig.register(SmallCnnConfig.model_type, SmallCnnConfig)
        AutoModelForImageClassification.register(SmallCnnConfig, SmallCnnForImageClassification)
        _registered = True


__all__ = [
    "NgramBagConfig",
    "NgramBagForSequenceClassification",
    "SmallCnnConfig",
    "SmallCnnForImageClassification",
    "TextCnnConfig",
    "TextCnnForSequenceClassification",
    "register",
]
