"""The rare-class sampler: images with rare classes drawn more often, from its generator."""

import numpy as np
import pytest
import torch

from segexp.data.sampler import rare_class_weights, training_sampler
from segexp.data.synthetic import SyntheticSegmentation
from segexp.errors import SegexpError


def test_rare_class_sampler_favours_rare_images_and_follows_its_generator():
    pixels = np.array([[100, 0], [100, 0], [99, 1], [100, 0]])
    weights = rare_class_weights(pixels)
    assert weights[2] == pytest.approx(1 + 4) and weights[0] == weights[1] == 1.0
    data = list(range(4))
    data_pixels = SyntheticSegmentation("train", 40, (32, 32), object_probs=[0.6, 0.04, 0.34, 0.02])
    gen = torch.Generator().manual_seed(3)
    sampler = training_sampler(data_pixels, "rare_class", 5, gen)
    state = gen.get_state()
    first, second = list(sampler), list(sampler)
    gen.set_state(state)  # what resume restores (the DataLoader's generator)
    assert list(sampler) == first and list(sampler) == second
    counts = np.bincount(first + second, minlength=40)
    rare = [i for i in range(40) if (np.isin(data_pixels.load(i)[1], [2, 4])).any()]
    assert counts[rare].mean() > counts.mean()
    assert training_sampler(data, "uniform", 2, gen) is None
    with pytest.raises(SegexpError, match=r"dataset\.sampler='often'"):
        training_sampler(data, "often", 2, gen)
