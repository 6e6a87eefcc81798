"""Titled grids: the grid kept as it is, titles and a legend added."""

import torch

from segexp.visual.colours import palette, preview_grid


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
