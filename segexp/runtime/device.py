"""Device, numeric precision and seeding: the parts of a run that depend on the machine."""

import contextlib
import random
from dataclasses import dataclass

import numpy as np
import torch

from segexp.config.trainer import TrainerSettings
from segexp.errors import SegexpError
from segexp.runtime import device_pool, distributed


@dataclass
class Device:
    """Where and how tensors are computed: device, autocast dtype, memory format.

    Normalisation is not done here: it is the model's input stage (models/wrapper.py), so that
    training, inference and the exported graph share it.
    """

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool

    def images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images from the loader, on the device, in the model's memory format."""
        images = images.to(self.device, non_blocking=True)
        if self.channels_last and images.ndim == 4:
            return images.contiguous(memory_format=torch.channels_last)
        return images.contiguous()  # a channels-last batch from pad_collate, as asked

    def batch(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images and integer masks from the loader -> device tensors (masks as int64)."""
        return self.images(images), masks.to(self.device, non_blocking=True).long()

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    @property
    def precision(self) -> str:
        return str(self.amp_dtype or "fp32").replace("torch.", "")


def resolve_device(name: str, exclusive: bool = False) -> torch.device:
    """``exclusive`` (a training run): ``auto`` takes a GPU no other run of this machine holds
    (runtime/device_pool.py); under torchrun, the process's own (``LOCAL_RANK``)."""
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        if not exclusive or distributed.launched_by_torchrun():
            return torch.device("cuda")
        return torch.device("cuda", device_pool.claim(device_pool.gpu_ids()))
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SegexpError(
            f"trainer.device={name} but CUDA is not available here: use trainer.device=auto or cpu"
        )
    return device


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware tiles (Intel AMX-BF16).

    Only AMX counts: on a CPU with AVX512-BF16 but no AMX, bf16 autocast is slower than fp32
    (docs/performance.md), and without either, bf16 is emulated. torch's capability string says
    "AMX" on AMX machines; the kernel's flags are read as well.
    """
    if "AMX" in torch.backends.cpu.get_cpu_capability():
        return True
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "amx_bf16" in flags


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """None means fp32. 'auto': bf16 on CUDA where supported (else fp16 with GradScaler), bf16
    on a CPU with AMX (cpu_has_native_bf16), fp32 on other CPUs."""
    if precision == "fp32":
        return None
    if precision == "auto" and device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "auto":
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None
    return torch.bfloat16 if precision == "bf16" else torch.float16


def make_device(trainer: TrainerSettings, exclusive: bool = False) -> Device:
    """The trainer's device, precision and memory format (``exclusive``: see resolve_device)."""
    device = resolve_device(trainer.device, exclusive)
    return Device(device, autocast_dtype(device, trainer.precision), trainer.channels_last)


def seed_everything(seed: int, deterministic: bool, cudnn_benchmark: bool = True) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = cudnn_benchmark and not deterministic
    torch.backends.cudnn.deterministic = deterministic
    # Called only on a change: use_deterministic_algorithms imports inductor's config, slowly.
    if torch.are_deterministic_algorithms_enabled() != deterministic:
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
