"""Per-iteration learning-rate schedules with a linear warm-up, as LambdaLR factors.

torch's SequentialLR(LinearLR, PolynomialLR) does the same in three objects whose milestones
must agree; one closed-form factor per schedule is easier to read and to resume.
"""

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

WARMUP_START_FACTOR = 1e-3


def _with_warmup(warmup_steps: int, decay):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return WARMUP_START_FACTOR + (1 - WARMUP_START_FACTOR) * step / warmup_steps
        return decay(step - warmup_steps)

    return factor


def warmup_poly(
    optimizer: Optimizer, total_steps: int, warmup_steps: int = 0, power: float = 0.9
) -> LambdaLR:
    """lr * (1 - t / T) ** power after warm-up, reaching 0 at ``total_steps``."""
    decay_steps = max(1, total_steps - warmup_steps)
    return LambdaLR(
        optimizer, _with_warmup(warmup_steps, lambda t: max(0.0, 1 - t / decay_steps) ** power)
    )


def warmup_cosine(
    optimizer: Optimizer, total_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.0
) -> LambdaLR:
    """Half a cosine from lr down to ``min_lr_ratio * lr`` at ``total_steps``."""
    decay_steps = max(1, total_steps - warmup_steps)

    def cosine(t: int) -> float:
        progress = min(1.0, t / decay_steps)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, _with_warmup(warmup_steps, cosine))


def warmup_constant(optimizer: Optimizer, total_steps: int, warmup_steps: int = 0) -> LambdaLR:
    """The configured lr throughout, after an optional warm-up."""
    del total_steps  # same signature as the other schedules
    return LambdaLR(optimizer, _with_warmup(warmup_steps, lambda t: 1.0))
