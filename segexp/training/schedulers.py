"""Per-iteration learning-rate schedules with a linear warm-up, as LambdaLR factors.

torch's SequentialLR(LinearLR, PolynomialLR) does the same in three objects whose milestones
must agree; one closed-form factor per schedule is easier to read and to resume.

Each factor is a small object rather than a closure: its ``total_steps``, the step at which the
schedule reaches its floor, can move while a run goes (a time budget lays the schedule over the
steps that fit: training/budget.py), and LambdaLR keeps a factor object's attributes in its
state_dict, so a resumed run continues with the horizon it had.
"""

import math
from dataclasses import dataclass

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

WARMUP_START_FACTOR = 1e-3


@dataclass
class Factor:
    """lr factor at a step: a linear warm-up over ``warmup_steps``, then ``decay(progress)``
    with progress going from 0 to 1 at ``total_steps``."""

    total_steps: int
    warmup_steps: int = 0

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return WARMUP_START_FACTOR + (1 - WARMUP_START_FACTOR) * step / self.warmup_steps
        decay_steps = max(1, self.total_steps - self.warmup_steps)
        return self.decay(min(1.0, (step - self.warmup_steps) / decay_steps))

    def decay(self, progress: float) -> float:
        return 1.0


@dataclass
class Poly(Factor):
    power: float = 0.9

    def decay(self, progress: float) -> float:
        return max(0.0, 1 - progress) ** self.power


@dataclass
class Cosine(Factor):
    min_lr_ratio: float = 0.0

    def decay(self, progress: float) -> float:
        half_cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * half_cosine


def warmup_poly(
    optimizer: Optimizer, total_steps: int, warmup_steps: int = 0, power: float = 0.9
) -> LambdaLR:
    """lr * (1 - t / T) ** power after warm-up, reaching 0 at ``total_steps``."""
    return LambdaLR(optimizer, Poly(total_steps, warmup_steps, power))


def warmup_cosine(
    optimizer: Optimizer, total_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.0
) -> LambdaLR:
    """Half a cosine from lr down to ``min_lr_ratio * lr`` at ``total_steps``."""
    return LambdaLR(optimizer, Cosine(total_steps, warmup_steps, min_lr_ratio))


def warmup_constant(optimizer: Optimizer, total_steps: int, warmup_steps: int = 0) -> LambdaLR:
    """The configured lr throughout, after an optional warm-up."""
    return LambdaLR(optimizer, Factor(total_steps, warmup_steps))


def set_horizon(scheduler: LambdaLR, total_steps: int) -> None:
    """Lay the schedule over ``total_steps`` optimizer steps from now on (its floor there)."""
    for factor in scheduler.lr_lambdas:
        factor.total_steps = int(total_steps)
