"""What a candidate setting costs on this machine: the time budget's probe (training/budget.py)
on the planned model at the candidate crop and batch, and, on CUDA, the memory a batch takes."""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from omegaconf import DictConfig, OmegaConf

from segexp.models.unet import resolve_auto_depth
from segexp.training.budget import probe
from segexp.training.experiment import build_experiment

GPU_HEADROOM = 0.8  # of the free memory a planned batch may take


@dataclass
class Cost:
    step: float  # seconds per optimizer step (data loading not included)
    eval_image: float  # seconds per image of the test pass
    memory: float | None  # CUDA bytes the step took, None on a CPU

    def images_per_s(self, batch: int) -> float:
        return batch / self.step


class Meter:
    """The planned model and its cost at each (crop, batch) asked: ``config_for(crop)`` is the
    run's config at that crop (a U-Net's ``depth: auto`` follows the crop, so each depth is a
    model of its own, built once)."""

    def __init__(self, config_for: Callable[[tuple[int, int]], DictConfig]) -> None:
        self.config_for = config_for
        self.models: dict[str, object] = {}
        self.cache: dict[tuple, Cost] = {}

    def _experiment(self, crop: tuple[int, int]):
        cfg = resolve_auto_depth(self.config_for(crop))
        key = str(OmegaConf.to_container(cfg.model, resolve=True))
        if key not in self.models:
            self.models[key] = build_experiment(cfg, training=False)
        return self.models[key]

    def cost(self, crop: tuple[int, int], batch: int, test_hw: tuple[int, int]) -> Cost:
        key = (crop, batch, test_hw)
        if key not in self.cache:
            exp = self._experiment(crop)
            device, channels = exp.dev.device, int(exp.cfg.dataset.in_channels)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            found = probe(exp, (batch, channels, *crop), (channels, *test_hw))
            memory = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
            self.cache[key] = Cost(found.step, found.eval_image, memory)
        return self.cache[key]

    def free_memory(self) -> float | None:
        if not torch.cuda.is_available():
            return None
        return torch.cuda.mem_get_info()[0]


def largest_batch_in_memory(two: dict[int, float], free: float) -> int:
    """From the memory of two batch sizes (linear in the batch: a fixed part and a per-image
    part), the largest batch whose step fits in GPU_HEADROOM of the free memory."""
    (small, low), (large, high) = sorted(two.items())
    per_image = max((high - low) / (large - small), 1.0)
    fixed = low - per_image * small
    return max(1, int((GPU_HEADROOM * free - fixed) // per_image))
