"""Device, numeric precision and seeding: the parts of a run that depend on the machine."""

import random

import numpy as np
import torch
from omegaconf import DictConfig

from segexp.engine import Device
from segexp.errors import SegexpError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SegexpError(
            f"trainer.device={name} but CUDA is not available here: use trainer.device=auto or cpu"
        )
    return device


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """None means fp32. On CPU, 'auto' is fp32: CPU autocast is slower than fp32 for convs."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16


def make_device(cfg: DictConfig) -> Device:
    trainer = cfg.trainer
    device = resolve_device(str(trainer.device))
    channels_last = trainer.channels_last
    if channels_last == "auto":  # the setting's meaning in configs saved before it defaulted on
        channels_last = device.type == "cuda"

    def stats(values) -> torch.Tensor:
        return torch.tensor(list(values), dtype=torch.float32, device=device).view(1, -1, 1, 1)

    return Device(
        device=device,
        amp_dtype=autocast_dtype(device, str(trainer.precision)),
        channels_last=bool(channels_last),
        mean=stats(cfg.dataset.mean),
        std=stats(cfg.dataset.std),
    )


def seed_everything(seed: int, deterministic: bool, cudnn_benchmark: bool = True) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = cudnn_benchmark and not deterministic
    torch.backends.cudnn.deterministic = deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
