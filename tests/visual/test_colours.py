"""Class colours: palettes, overlays, coloured masks and preview grids with legends."""

import math

import numpy as np
import pytest
import torch

from segexp.errors import SegexpError
from segexp.visual.colours import colorize, dataset_palette, palette, preview_grid
from segexp.visual.samples import overlay
from tests.conftest import TINY, compose_config


def test_overlay_blends_class_colours_and_whitens_ignore():
    image = np.full((1, 3, 1), 100, np.uint8)
    mask = np.array([[0, 1, 255]])
    colours = palette(2, ["background", "cell"]).numpy()
    out = overlay(image, mask, colours, alpha=0.5)
    assert out[0, 0].tolist() == [50, 50, 50]  # class 0 named background is black
    assert out[0, 1].tolist() == [int(100 * 0.5 + c * 0.5) for c in colours[1]]
    assert out[0, 2].tolist() == [177, 177, 177]  # (100 + 255) / 2, white for ignore


def test_preview_rows_are_image_truth_prediction():
    colours = palette(3)
    images = torch.zeros(2, 1, 4, 5, dtype=torch.uint8)
    truth = torch.tensor([[0, 1, 2, 255, 0]]).expand(2, 4, 5)
    grid = preview_grid(images, truth, truth, colours)
    assert grid.shape == (3, 8, 15) and grid.dtype == torch.uint8
    assert torch.equal(grid[:, :4, 5:10], grid[:, :4, 10:15])
    assert torch.equal(colorize(truth[0], colours)[:, 0, 3], torch.tensor([255, 255, 255]))
    assert not math.isclose(float(grid[:, 0, 6].sum()), 0.0)


def test_default_palette_shows_every_class_and_legends_name_them():
    assert (palette(3, ["sky", "road", "car"]).sum(1) > 0).all()  # no black class
    assert palette(3, ["background", "road", "car"])[0].tolist() == [0, 0, 0]
    cfg = compose_config([*TINY, "dataset.palette=[[1,2,3],[4,5,6],[7,8,9],[9,9,9],[0,0,9]]"])
    assert dataset_palette(cfg.dataset)[1].tolist() == [4, 5, 6]
    with pytest.raises(SegexpError, match=r"dataset\.palette has 1 colours but .*num_classes=5"):
        dataset_palette(compose_config([*TINY, "dataset.palette=[[1,2,3]]"]).dataset)
    truth = torch.zeros(1, 8, 100, dtype=torch.long)
    plain = preview_grid(torch.zeros(1, 3, 8, 100, dtype=torch.uint8), truth, truth, palette(2))
    named = preview_grid(
        torch.zeros(1, 3, 8, 100, dtype=torch.uint8), truth, truth, palette(2), ["a", "b"]
    )
    assert named.shape[1] > plain.shape[1] and torch.equal(named[:, :8], plain)
