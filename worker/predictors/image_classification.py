"""Image classification: an image processor (resize, rescale, normalize), a classification head,
softmax over its labels, the top_k of them.

Any Hugging Face image-classification folder with safetensors weights (ResNet, ViT, …) loads through
`AutoModelForImageClassification` + `AutoImageProcessor`; the project's own CNN (`worker.nets`) is
registered with those Auto classes first. Inputs are `worker.images.ImageSource`s (checked headers) or
decoded RGB images; a source's pixels are decoded when its batch is collated, shrunk at once towards the
processor's input size, so a part holds decoded pixels for one batch only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from transformers import AutoImageProcessor, AutoModelForImageClassification

from inferq.shared.tasks import IMAGE_CLASSIFICATION
from inferq.worker import explain, nets
from inferq.worker.images import model_image, processor_fit
from inferq.worker.predictors.base import Predictor, Prepared, to_device
from inferq.worker.predictors.labels import model_labels, top_labels

log = logging.getLogger(__name__)


class ImageClassificationPredictor(Predictor):
    task = IMAGE_CLASSIFICATION
    explain_method = explain.IMAGE_METHOD

    def __init__(self, model_dir: Path, device: torch.device, config: dict[str, Any]) -> None:
        super().__init__(model_dir, device, config)
        nets.register()
        self.processor = AutoImageProcessor.from_pretrained(
            str(model_dir), local_files_only=True, trust_remote_code=False
        )
        self.model = AutoModelForImageClassification.from_pretrained(
            str(model_dir),
            use_safetensors=True,
            trust_remote_code=False,
            local_files_only=True,
            dtype=torch.float32,
        )
        self.model.to(device).eval()
        self.labels = model_labels(model_dir, self.model.config)
        self.fit = processor_fit(self.processor)

    def preprocess(self, values: list[Any], params: dict[str, Any]) -> Prepared:
        """Nothing decoded yet: the images wait, encoded, for their batch (`collate`)."""
        return Prepared(lengths=[1] * len(values), features={"images": list(values)})

    def collate(self, prepared: Prepared, indices: list[int]) -> dict[str, torch.Tensor]:
        images = [model_image(prepared.features["images"][i], self.fit) for i in indices]
        pixels = self.processor(images, return_tensors="pt")["pixel_values"]
        del images
        return to_device({"pixel_values": pixels}, self.device)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.softmax(self.model(**batch).logits.float(), dim=-1)

    def postprocess(self, output: torch.Tensor, params: dict[str, Any]) -> list[dict[str, Any]]:
        return top_labels(output, self.labels, params)

    def explain(self, batch: dict[str, torch.Tensor], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A saliency map (|gradient| of the predicted label's logit per pixel) as a small grayscale PNG."""
        chosen = [str(r["label"]) for r in results]
        maps = explain.saliency_explanations(self.model, batch["pixel_values"], self.labels, chosen)
        return [{"saliency": m} for m in maps]
