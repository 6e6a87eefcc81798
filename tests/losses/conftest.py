"""Logits and targets shared by the loss tests."""

import torch

IGNORE = 255


def random_batch(seed: int, num_classes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, num_classes, 5, 6, generator=generator, dtype=torch.float64)
    target = torch.randint(0, num_classes, (2, 5, 6), generator=generator)
    target[torch.rand(2, 5, 6, generator=generator) < 0.3] = IGNORE
    target[0, 0, :num_classes] = torch.arange(num_classes)  # every class present
    return logits, target


CE_LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.3], [-0.5, 0.2, 1.5], [3.0, -3.0, 0.0]])

CE_TARGET = torch.tensor([0, 2, 1, IGNORE])


def as_image(pixels: torch.Tensor) -> torch.Tensor:
    """(P, C) pixel logits -> (1, C, 1, P) image logits; (P,) labels -> (1, 1, P)."""
    return pixels.T[None, :, None, :] if pixels.dim() == 2 else pixels[None, None, :]
