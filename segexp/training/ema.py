"""An exponential moving average of the weights (``trainer.ema``), torch's AveragedModel.

When enabled, validation, ``best.pt`` and the test pass use the averaged weights; the
checkpoint's ``model`` entry holds them (so evaluate, predict and export read them as any other
run's weights) and ``ema`` holds the training weights and the update count that resume needs.
"""

import math
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from segexp.config.trainer import EmaSettings


class WeightAverage:
    """``decay`` per optimizer step, ramped in as ``decay * (1 - exp(-updates / warmup))`` so the
    early average is not dominated by the random initial weights (timm and YOLO do the same)."""

    def __init__(self, model: nn.Module, decay: float, warmup: int = 0) -> None:
        self.decay, self.warmup = float(decay), int(warmup)
        # Buffers (BatchNorm statistics) averaged as well; integer ones are copied.
        self.averaged = AveragedModel(model, multi_avg_fn=self._update, use_buffers=True)
        self.model = model

    @property
    def module(self) -> nn.Module:
        return self.averaged.module

    def current_decay(self, updates: int) -> float:
        if self.warmup <= 0:
            return self.decay
        return self.decay * (1 - math.exp(-updates / self.warmup))

    @torch.no_grad()
    def _update(self, averaged: list, current: list, n_averaged: torch.Tensor) -> None:
        decay = self.current_decay(int(n_averaged))
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, 1 - decay)
        else:
            for target, source in zip(averaged, current, strict=True):
                target.copy_(source)

    def update(self) -> None:
        """After each optimizer step."""
        self.averaged.update_parameters(self.model)

    def state_dict(self) -> dict[str, Any]:
        return {"training_weights": self.model.state_dict(), "n_averaged": self.averaged.n_averaged}

    def load(self, averaged_weights: dict, n_averaged: torch.Tensor | None) -> None:
        """Back to a checkpoint's state (the training weights are loaded by the caller)."""
        self.module.load_state_dict(averaged_weights)
        if n_averaged is not None:
            self.averaged.n_averaged.copy_(n_averaged)
        else:
            self.averaged.n_averaged.fill_(1)  # keep these weights as the average's start


def build_ema(settings: EmaSettings, model: nn.Module) -> WeightAverage | None:
    """None unless ``trainer.ema.decay`` is set."""
    if settings.decay is None:
        return None
    return WeightAverage(model, settings.decay, settings.warmup)
