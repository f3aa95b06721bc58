"""A small convolutional image classifier defined in the project, for inputs like 8x8 digits or 32x32
photos: `blocks` stages of (conv-BN-ReLU) x2 + max-pool, doubling the width each stage, then global
average pooling and a linear head. `cnn-small` (width 32) and `cnn-base` (width 64) are its presets.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput

PRESETS: dict[str, dict[str, Any]] = {
    "cnn-small": {"width": 32, "blocks": 3},
    "cnn-base": {"width": 64, "blocks": 3},
}


class SmallCnnConfig(PretrainedConfig):
    model_type = "inferq-cnn"

    def __init__(
        self,
        num_channels: int = 3,
        width: int = 32,
        blocks: int = 3,
        dropout: float = 0.2,
        image_size: int = 32,
        **kwargs: Any,
    ) -> None:
        self.num_channels = num_channels
        self.width = width
        self.blocks = blocks
        self.dropout = dropout
        self.image_size = image_size
        super().__init__(**kwargs)


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SmallCnnForImageClassification(PreTrainedModel):
    config_class = SmallCnnConfig
    base_model_prefix = "cnn"
    main_input_name = "pixel_values"

    def __init__(self, config: SmallCnnConfig) -> None:
        super().__init__(config)
        stages = []
        cin = config.num_channels
        for i in range(config.blocks):
            cout = config.width * 2**i
            stages.append(_stage(cin, cout))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(cin, int(config.num_labels or 2))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.01)
            nn.init.zeros_(module.bias)

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **_: Any
    ) -> ImageClassifierOutput:
        x = pixel_values
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < len(self.stages) - 1 and min(x.shape[-2:]) >= 2:
                x = F.max_pool2d(x, 2)
        logits = self.classifier(self.dropout(x.mean(dim=(2, 3))))
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)
