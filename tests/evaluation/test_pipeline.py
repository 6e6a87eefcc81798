"""Sliding windows, flip and multi-scale TTA against direct computations with the model."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segexp.errors import SegexpError
from segexp.evaluation.pipeline import (
    InferenceOptions,
    at_size,
    gaussian_weights,
    scores,
    sliding_window,
    tile_starts,
    to_probabilities,
)
from segexp.models.unet import UNet

RADIUS = 2  # two 3x3 convolutions: an output pixel sees 2 pixels each way


def predict_probs(model: nn.Module, images: torch.Tensor, options: InferenceOptions):
    return to_probabilities(scores(model, images, options), options)


def small_fcn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1)
    ).eval()


def far_from_inner_tile_edges(size: int, tile: int, overlap: float) -> torch.Tensor:
    """True where every tile covering the pixel sees its whole receptive field.

    Tile edges on the image border don't count: there the whole-image pass pads the same way.
    """
    ok = torch.ones(size, dtype=torch.bool)
    positions = torch.arange(size)
    for start in tile_starts(size, tile, overlap):
        inside = (positions >= start) & (positions < start + tile)
        near = torch.zeros(size, dtype=torch.bool)
        if start > 0:
            near |= positions < start + RADIUS
        if start + tile < size:
            near |= positions >= start + tile - RADIUS
        ok &= ~(inside & near)
    return ok


def test_tile_starts_cover_the_image_and_end_at_its_edge():
    assert tile_starts(40, 16, 0.5) == [0, 8, 16, 24]
    assert tile_starts(41, 16, 0.5) == [0, 8, 16, 24, 25]
    assert tile_starts(10, 16, 0.5) == [0]
    assert tile_starts(32, 16, 0.0) == [0, 16]


def test_gaussian_weights_peak_in_the_centre_and_stay_positive():
    w = gaussian_weights(9, 13)
    assert w.shape == (9, 13)
    assert w[4, 6] == w.max() == 1
    assert w.min() > 0 and w[0, 0] < w[4, 0] < w[4, 6]
    assert torch.allclose(w, w.flip(0)) and torch.allclose(w, w.flip(1))


def test_sliding_window_equals_whole_image_away_from_tile_borders():
    model = small_fcn()
    images = torch.randn(2, 3, 40, 52)
    with torch.no_grad():
        whole = model(images).softmax(dim=1)
        tiled = sliding_window(model, images, tile=(16, 16), overlap=0.5, tile_batch=5)
    keep = far_from_inner_tile_edges(40, 16, 0.5)[:, None] & far_from_inner_tile_edges(52, 16, 0.5)
    assert 0.3 < keep.float().mean() < 0.9  # the comparison covers a real share of the image
    assert torch.allclose(tiled[..., keep], whole[..., keep], atol=1e-5)
    # Near inner tile edges the tiles really do see less context, so the two differ there.
    assert (tiled[..., ~keep] - whole[..., ~keep]).abs().max() > 1e-3
    assert torch.allclose(tiled.sum(dim=1), torch.ones(2, 40, 52), atol=1e-5)


def test_pointwise_model_is_tiled_exactly_everywhere():
    torch.manual_seed(1)
    model = nn.Conv2d(3, 5, 1).eval()
    images = torch.randn(1, 3, 37, 29)
    with torch.no_grad():
        tiled = sliding_window(model, images, tile=(16, 16), overlap=0.25)
        assert torch.allclose(tiled, model(images).softmax(dim=1), atol=1e-6)


def test_tiles_go_through_the_model_in_batches():
    calls = []

    class Recorder(nn.Module):
        def forward(self, x):
            calls.append(x.shape)
            return x[:, :2]

    # 40x52 with 16x16 tiles, overlap 0.5: 4 rows x 6 columns = 24 tiles per image, 2 images.
    sliding_window(Recorder(), torch.randn(2, 3, 40, 52), (16, 16), 0.5, tile_batch=10)
    assert [s[0] for s in calls] == [10, 10, 10, 10, 8]
    assert all(s[-2:] == (16, 16) for s in calls)


def test_images_smaller_than_a_tile_keep_their_size():
    torch.manual_seed(2)
    model = nn.Conv2d(3, 4, 1).eval()
    images = torch.randn(1, 3, 10, 7)
    probs = predict_probs(model, images, InferenceOptions(tile=(16, 16)))
    assert probs.shape == (1, 4, 10, 7)
    with torch.no_grad():
        assert torch.allclose(probs, model(images).softmax(dim=1), atol=1e-6)


def test_flip_tta_is_the_mean_of_the_image_and_its_flipped_copy():
    model = UNet(3, 4, depth=2, base_channels=4).eval()
    images = torch.randn(2, 3, 24, 20)
    with torch.no_grad():
        plain = model(images).softmax(dim=1)
        flipped_back = model(images.flip(-1)).softmax(dim=1).flip(-1)
        upside_down_back = model(images.flip(-2)).softmax(dim=1).flip(-2)
    tta = predict_probs(model, images, InferenceOptions(tta="flip"))
    assert torch.allclose(tta, (plain + flipped_back) / 2, atol=1e-6)
    assert (tta - plain).abs().max() > 1e-4  # the model is not flip-invariant: TTA changed it
    both = predict_probs(model, images, InferenceOptions(tta="flip_hv"))
    assert torch.allclose(both, (plain + flipped_back + upside_down_back) / 3, atol=1e-6)


def test_flip_tta_combines_with_sliding_window():
    model = small_fcn(3)
    images = torch.randn(1, 3, 33, 45)
    options = InferenceOptions(tile=(16, 16), overlap=0.5, tta="flip")
    expected = (
        sliding_window(model, images, (16, 16), 0.5)
        + sliding_window(model, images.flip(-1), (16, 16), 0.5).flip(-1)
    ) / 2
    assert torch.allclose(predict_probs(model, images, options), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"tta": "rot90"}, "inference.tta="),
        ({"overlap": 1.0}, "inference.overlap="),
        ({"tile": (0, 8)}, "inference.tile="),
        ({"tile": (8,)}, "inference.tile="),
    ],
)
def test_bad_inference_options_name_the_key(kwargs, key):
    with pytest.raises(SegexpError, match=key):
        InferenceOptions(**kwargs)


def test_plain_scores_are_the_model_logits_and_other_modes_probabilities():
    model = small_fcn(4)
    images = torch.randn(1, 3, 20, 24)
    with torch.no_grad():
        logits = model(images)
    assert torch.equal(scores(model, images, InferenceOptions()), logits)
    assert torch.allclose(predict_probs(model, images, InferenceOptions()), logits.softmax(1))


def test_scores_map_back_to_the_label_size_as_bilinear_probabilities():
    model = small_fcn(5)
    images = torch.randn(1, 3, 20, 24)
    options = InferenceOptions()
    out = scores(model, images, options)
    assert at_size(out, (20, 24), options) is out  # at the label size already: unchanged
    resized = at_size(out, (40, 48), options)
    expected = torch.nn.functional.interpolate(
        out.softmax(1), size=(40, 48), mode="bilinear", align_corners=False
    )
    assert resized.shape == (1, 4, 40, 48) and torch.allclose(resized, expected)
    assert torch.allclose(resized.sum(1), torch.ones(1, 40, 48), atol=1e-5)


def images(n: int = 2, height: int = 20, width: int = 28) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(n, 3, height, width)


def probabilities(model, x, options: InferenceOptions, size) -> torch.Tensor:
    p = to_probabilities(scores(model, x, options, size=size), options)
    return p if p.shape[-2:] == size else F.interpolate(p, size=size, mode="bilinear")


@pytest.mark.parametrize("size", [(20, 28), (31, 45)])
def test_scale_one_alone_equals_no_tta(size):
    x = images()
    model = small_fcn()
    for ms, single in (("ms", "none"), ("ms_flip", "flip")):
        a = probabilities(model, x, InferenceOptions(tta=ms, scales=[1.0]), size)
        b = probabilities(model, x, InferenceOptions(tta=single), size)
        assert a.shape == (2, 4, *size)
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def direct_multi_scale(model, x, scales, size, flip: bool, tile=None) -> torch.Tensor:
    """Each scale (and its flip) run separately, resized to ``size`` and averaged there."""
    total = []
    for s in scales:
        scaled = F.interpolate(
            x, size=(round(x.shape[2] * s), round(x.shape[3] * s)), mode="bilinear"
        )
        variants = [(scaled, False)] + ([(scaled.flip(-1), True)] if flip else [])
        for image, flipped in variants:
            if tile is None:
                probs = model(image).softmax(1)
            else:
                probs = sliding_window(model, image, tile, 0.5, 4)
            probs = probs.flip(-1) if flipped else probs
            total.append(F.interpolate(probs, size=size, mode="bilinear"))
    return torch.stack(total).mean(0)


@pytest.mark.parametrize("tile", [None, (16, 16)])
def test_ms_flip_averages_every_scale_and_flip_at_the_labels_size(tile):
    x, model, size = images(), small_fcn(), (40, 56)
    options = InferenceOptions(tta="ms_flip", scales=[0.5, 1.0, 1.5], tile=tile, tile_batch=4)
    got = scores(model, x, options, size=size)
    assert got.shape == (2, 4, *size)
    expected = direct_multi_scale(model, x, [0.5, 1.0, 1.5], size, flip=True, tile=tile)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.sum(1), torch.ones(2, *size))
    # not the same as scale 1 alone: the test above would catch a mode that ignores scales
    single = scores(model, x, InferenceOptions(tta="flip", tile=tile, tile_batch=4), size=size)
    assert (got - single).abs().max() > 1e-3


def test_scales_are_checked():
    with pytest.raises(SegexpError, match=r"inference\.scales"):
        InferenceOptions(tta="ms", scales=[])
    with pytest.raises(SegexpError, match=r"inference\.scales"):
        InferenceOptions(tta="ms", scales=[0.5, -1])
    assert InferenceOptions(tta="flip").scale_factors == (1.0,)


def test_the_relative_cost_counts_passes_and_pixels_of_test_time_augmentation():
    assert InferenceOptions().relative_cost == 1.0
    assert InferenceOptions(tta="flip_hv").relative_cost == 3.0
    # Each scale's pixels, flipped once more: (0.5^2 + 1^2) x 2.
    assert InferenceOptions(tta="ms_flip", scales=[0.5, 1.0]).relative_cost == 2.5
