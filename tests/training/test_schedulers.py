"""Learning-rate schedules: a linear warm-up, then poly, cosine or constant."""

import pytest
import torch

from segexp.training.schedulers import warmup_constant, warmup_cosine, warmup_poly


def lrs(factory, steps, **kwargs):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = factory(optimizer, total_steps=steps, **kwargs)
    values = []
    for _ in range(steps):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values


def test_poly_warms_up_linearly_then_decays_to_zero():
    values = lrs(warmup_poly, 20, warmup_steps=4, power=1.0)
    assert values[0] == pytest.approx(1e-3)
    assert values[2] == pytest.approx(1e-3 + (1 - 1e-3) * 0.5)
    assert values[4] == pytest.approx(1.0)
    assert values[12] == pytest.approx(1 - 8 / 16)
    assert values == sorted(values[:5]) + sorted(values[5:], reverse=True)


def test_cosine_halfway_is_half_and_respects_the_floor():
    values = lrs(warmup_cosine, 21, warmup_steps=1, min_lr_ratio=0.1)
    assert values[11] == pytest.approx(0.1 + 0.9 * 0.5)
    assert min(values[1:]) >= 0.1 - 1e-9


def test_constant_stays_put():
    assert lrs(warmup_constant, 5) == [1.0] * 5
