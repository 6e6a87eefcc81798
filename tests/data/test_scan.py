"""The label scan's median-frequency class weights, by hand."""

from segexp.data.scan import median_frequency_weights


def test_median_frequency_weights_by_hand():
    # freq = [30/40, 10/20] = [0.75, 0.5]; median 0.625 -> [0.8333, 1.25]; class 2 absent -> 1
    assert median_frequency_weights([30, 10, 0], [40, 20, 0]) == [0.8333, 1.25, 1.0]
