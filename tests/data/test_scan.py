"""The label scan's median-frequency class weights, by hand."""

import numpy as np

from segexp.data.scan import class_widths, median_frequency_weights, outlines


def test_median_frequency_weights_by_hand():
    # freq = [30/40, 10/20] = [0.75, 0.5]; median 0.625 -> [0.8333, 1.25]; class 2 absent -> 1
    assert median_frequency_weights([30, 10, 0], [40, 20, 0]) == [0.8333, 1.25, 1.0]


def test_a_class_width_is_the_width_of_a_stripe():
    mask = np.zeros((20, 30), np.uint8)
    mask[5:8] = 1  # a stripe 3 rows wide across the mask
    mask[12:20, 0:8] = 2  # an 8x8 square in a corner: two sides on the mask's border
    edge = outlines(mask)
    class_pixels = np.bincount(mask.ravel(), minlength=3)
    outline_pixels = np.bincount(mask[edge], minlength=3)
    widths = class_widths(class_pixels.tolist(), outline_pixels.tolist())
    assert widths[1] == 3.0  # 90 pixels, 60 on its two outlines
    assert widths[2] == 2 * 64 / 15  # the border is no outline: 8 + 7 pixels
    assert class_widths([5, 0], [0, 0]) == [None, None]
