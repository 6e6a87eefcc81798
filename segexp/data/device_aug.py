"""Photometric augmentation on the device, on the uint8 training batch (config: `aug.device`).

At 512x512 the photometric part of `aug=strong` (GaussNoise above all) is the costliest work of
a loader worker: a GPU step of 16 images would need many cores just for it (docs/performance.md,
"The input pipeline at 512x512"). On the device the same transforms take a few elementwise
passes over the whole batch. Geometric transforms (crops, flips, affine, elastic) stay in
albumentations, where image and mask move together. Written with plain torch ops (no kornia
dependency): three transforms with per-image random parameters, drawn from the augmentation's
own generator.

Seeded and resumable like the CPU path: the generator lives on the batch's device, is seeded
from the run's seed, and its state is saved in every checkpoint (training/resume.py).
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# ITU-R BT.601 luma, as torchvision's and albumentations' grayscale conversion.
_LUMA = (0.299, 0.587, 0.114)


class DevicePhotometric:
    """Colour jitter (brightness, contrast, saturation), Gaussian blur and Gaussian noise, each
    applied to an image with its probability; images are uint8 (N, C, H, W) in and out.

    Parameters follow albumentations' meaning: brightness/contrast/saturation factors are drawn
    from [1 - x, 1 + x]; ``blur_sigma`` and ``noise_std`` (a fraction of 255) from their ranges.
    """

    def __init__(
        self,
        brightness: float = 0.2,
        contrast: float = 0.2,
        saturation: float = 0.2,
        jitter_p: float = 0.5,
        blur_sigma: tuple[float, float] = (0.3, 1.2),
        blur_p: float = 0.2,
        noise_std: tuple[float, float] = (0.02, 0.08),
        noise_p: float = 0.3,
    ) -> None:
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation
        self.jitter_p, self.blur_p, self.noise_p = jitter_p, blur_p, noise_p
        self.blur_sigma = tuple(float(s) for s in blur_sigma)
        self.noise_std = tuple(float(s) for s in noise_std)
        self.generator: torch.Generator | None = None

    def seed(self, seed: int, device: torch.device) -> None:
        self.generator = torch.Generator(device=device).manual_seed(int(seed))

    def _rand(self, n: int, images: Tensor) -> Tensor:
        return torch.rand(n, 1, 1, 1, generator=self.generator, device=images.device)

    def _uniform(self, n: int, images: Tensor, low: float, high: float) -> Tensor:
        return low + (high - low) * self._rand(n, images)

    def __call__(self, images: Tensor) -> Tensor:
        if self.generator is None or self.generator.device != images.device:
            raise RuntimeError("DevicePhotometric.seed(seed, device) must be called first")
        n = images.shape[0]
        x = images.float().div_(255)  # keeps the memory format (channels-last stays so)
        jitter = self._rand(n, x) < self.jitter_p
        brightness = self._uniform(n, x, 1 - self.brightness, 1 + self.brightness)
        contrast = self._uniform(n, x, 1 - self.contrast, 1 + self.contrast)
        saturation = self._uniform(n, x, 1 - self.saturation, 1 + self.saturation)
        x = torch.where(jitter, (x * brightness).clamp_(0, 1), x)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = torch.where(jitter, ((x - mean) * contrast + mean).clamp_(0, 1), x)
        if x.shape[1] == 3:
            luma = torch.tensor(_LUMA, device=x.device).view(1, 3, 1, 1)
            gray = (x * luma).sum(dim=1, keepdim=True)
            x = torch.where(jitter, ((x - gray) * saturation + gray).clamp_(0, 1), x)
        blur = self._rand(n, x) < self.blur_p
        sigma = self._uniform(n, x, *self.blur_sigma).view(n)
        x = torch.where(blur, _gaussian_blur(x, sigma, self.blur_sigma[1]), x)
        noisy = self._rand(n, x) < self.noise_p
        std = self._uniform(n, x, *self.noise_std)
        noise = torch.randn(x.shape, generator=self.generator, device=x.device)
        x = torch.where(noisy, x + noise * std, x)
        out = x.clamp_(0, 1).mul_(255).round_().to(torch.uint8)
        return out.contiguous(memory_format=_memory_format(images))

    def state(self) -> Tensor | None:
        return None if self.generator is None else self.generator.get_state()

    def set_state(self, state: Tensor) -> None:
        self.generator.set_state(state)


def _memory_format(images: Tensor) -> torch.memory_format:
    if images.ndim == 4 and images.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _gaussian_blur(x: Tensor, sigma: Tensor, max_sigma: float) -> Tensor:
    """Separable Gaussian blur with one sigma per image (reflect padding)."""
    n, c, height, width = x.shape
    radius = max(1, math.ceil(3 * max_sigma))
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(offsets.view(1, -1) ** 2) / (2 * sigma.view(-1, 1).to(x.dtype) ** 2))
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (n*c, k)
    flat = x.reshape(1, n * c, height, width)
    flat = F.pad(flat, (radius, radius, 0, 0), mode="reflect")
    flat = F.conv2d(flat, kernel.view(n * c, 1, 1, -1), groups=n * c)
    flat = F.pad(flat, (0, 0, radius, radius), mode="reflect")
    flat = F.conv2d(flat, kernel.view(n * c, 1, -1, 1), groups=n * c)
    return flat.view(n, c, height, width)
