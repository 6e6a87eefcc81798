"""The grid of augmented samples: image and mask pairs, and a legend."""

import numpy as np
import torch

from segexp.visual.samples import sample_grid


def test_sample_grid_shows_pairs_and_a_legend():
    data = [(torch.full((1, 8, 8), 50, dtype=torch.uint8), torch.ones(8, 8, dtype=torch.uint8))] * 3
    grid = sample_grid(data, ["bg", "fg"], num_samples=3, columns=3)
    assert grid.dtype == np.uint8 and grid.shape[2] == 3
    assert grid.shape[1] == 3 * (256 + 4)  # 8x16 pairs enlarged to 128x256
    assert grid.shape[0] > 128 + 4  # room for the legend
