"""Schedules, batching, checkpoints, previews: the small pieces the loop is made of."""

import math

import pytest
import torch

from segexp.data.collate import pad_collate
from segexp.storage.checkpoint import load_checkpoint, save_checkpoint
from segexp.training.schedulers import warmup_constant, warmup_cosine, warmup_poly
from segexp.visual.colours import colorize, palette, preview_grid


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


def test_pad_collate_fills_masks_with_ignore_index():
    a = (torch.ones(3, 2, 3, dtype=torch.uint8), torch.zeros(2, 3, dtype=torch.uint8))
    b = (torch.ones(3, 4, 2, dtype=torch.uint8), torch.ones(4, 2, dtype=torch.uint8))
    images, masks = pad_collate([a, b], ignore_index=255)
    assert images.shape == (2, 3, 4, 3) and masks.shape == (2, 4, 3)
    assert (masks[0, 2:] == 255).all() and (masks[1, :, 2] == 255).all()
    assert (images[0, :, 2:] == 0).all() and (masks[0, :2, :3] == 0).all()


def test_checkpoint_round_trip_and_failed_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1, "w": torch.arange(3)}, path)
    with pytest.raises(Exception):  # noqa: B017 - any pickling failure
        save_checkpoint({"epoch": 2, "bad": lambda: None}, path)
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_preview_rows_are_image_truth_prediction():
    colours = palette(3)
    images = torch.zeros(2, 1, 4, 5, dtype=torch.uint8)
    truth = torch.tensor([[0, 1, 2, 255, 0]]).expand(2, 4, 5)
    grid = preview_grid(images, truth, truth, colours)
    assert grid.shape == (3, 8, 15) and grid.dtype == torch.uint8
    assert torch.equal(grid[:, :4, 5:10], grid[:, :4, 10:15])
    assert torch.equal(colorize(truth[0], colours)[:, 0, 3], torch.tensor([255, 255, 255]))
    assert not math.isclose(float(grid[:, 0, 6].sum()), 0.0)


def test_titled_grid_keeps_the_grid_and_adds_titles_and_a_legend():
    from segexp.visual.legend import LINE, titled_grid

    colours = palette(3)
    truth = torch.tensor([[[0, 1], [2, 2]]]).repeat_interleave(16, 1).repeat_interleave(20, 2)
    grid = preview_grid(torch.zeros(1, 3, 32, 40, dtype=torch.uint8), truth, truth, colours)
    titled = titled_grid(grid, ["background", "cell", "membrane"], colours)
    assert titled.shape == (3, 32 + LINE * 4, 120) and titled.dtype == torch.uint8
    assert torch.equal(titled[:, LINE : LINE + 32], grid)  # the grid itself untouched
    assert (titled[:, :LINE] < 128).any()  # title text drawn
    legend_row = titled[:, 32 + LINE * 2 + 6, 6]  # the swatch of class 1
    assert torch.equal(legend_row, colours[1])
