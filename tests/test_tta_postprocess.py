"""Multi-scale TTA against direct computations, and the post-processors."""

import sys

import pytest
import torch
import torch.nn.functional as F

from segexp.errors import SegexpError
from segexp.evaluation.pipeline import (
    InferenceOptions,
    scores,
    sliding_window,
    to_probabilities,
)
from segexp.evaluation.postprocess import DenseCRF, SmallComponents, build_postprocess

from .test_inference import small_fcn


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


def test_small_components_are_filled_by_the_surrounding_class():
    classes = torch.zeros(12, 12, dtype=torch.long)
    classes[2:10, 2:10] = 1  # 64 px of class 1
    classes[5:7, 5:7] = 2  # a 4-px island of class 2 inside it
    classes[0, 11] = 2  # a 1-px speck in the background
    classes[11, 0:3] = 3  # 3 px: exactly min_size, kept
    out = SmallComponents(min_size=3)(classes)
    assert (out[5:7, 5:7] == 2).all()  # 4 >= 3: kept
    assert out[0, 11] == 0  # the speck takes the background's class
    assert (out[11, 0:3] == 3).all()
    out = SmallComponents(min_size=5)(classes)
    assert (out[5:7, 5:7] == 1).all()  # the island becomes the surrounding class, not 0
    assert (out[11, 0:3] == 0).all()
    assert (out[2:10, 2:10] == 1).all() and (out == 2).sum() == 0
    assert out.dtype == classes.dtype


def test_small_components_leave_a_map_of_only_small_components_alone():
    classes = torch.arange(4).view(2, 2)
    assert torch.equal(SmallComponents(min_size=10)(classes), classes)
    with pytest.raises(SegexpError, match=r"postprocess\.min_size"):
        SmallComponents(min_size=0)


def test_crf_without_its_extra_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydensecrf", None)
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    with pytest.raises(SegexpError, match=r"segexp\[crf\]"):
        DenseCRF()


def test_crf_follows_the_image_edges():
    pytest.importorskip("pydensecrf.densecrf", reason="the optional extra segexp[crf]")
    image = torch.zeros(3, 24, 24, dtype=torch.uint8)
    image[:, :, 12:] = 255  # an edge at column 12
    probs = torch.full((2, 24, 24), 0.1)
    probs[1, :, 14:] = 0.9  # the model puts its edge two columns too far right...
    probs[1, :, 10:14] = 0.55  # ...with low confidence in between
    probs[0] = 1 - probs[1]
    assert (probs.argmax(0)[:, 10:12] == 1).all()
    out = DenseCRF(iterations=10)(probs.argmax(0), probs, image)
    assert (out[:, 12:] == 1).all() and (out[:, :12] == 0).all()  # ...the CRF moves it


def test_postprocess_none_builds_nothing():
    from omegaconf import OmegaConf

    assert build_postprocess(OmegaConf.create({})) is None
    node = OmegaConf.create(
        {"_target_": "segexp.evaluation.postprocess.SmallComponents", "min_size": 7}
    )
    assert build_postprocess(node).min_size == 7


def test_final_test_pass_takes_tta_and_postprocessing_and_logs_confusion_images(tmp_path):
    import json

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from segexp.training.fit import fit

    from .conftest import TINY, compose_config

    overrides = [*TINY, "trainer.epochs=1", "test.inference.tta=ms_flip",
                 "test.inference.scales=[1.0,1.5]", "postprocess@test.postprocess=small_components",
                 "test.postprocess.min_size=4"]  # fmt: skip
    fit(compose_config(overrides), tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    test = summary["test"]
    assert set(test["without_postprocess"]) >= {"mIoU", "mBF1", "per_class_bf1"}
    assert "mBF1" in test and "mBF1" in summary["val"]
    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0}).Reload()
    images = set(events.Tags()["images"])
    assert {"visuals/val_confusion_matrix", "~final/test_confusion_matrix"} <= images
    assert {"val/mBF1", "~final/test_mBF1", "val_bf1/disc"} <= set(events.Tags()["scalars"])
    image = events.Images("visuals/val_confusion_matrix")[0]
    assert image.width > 100 and image.height > 100
    # the same numbers as segexp-evaluate with the same options: one path
    from .conftest import evaluate_tool

    again = evaluate_tool(
        f"run={tmp_path}", "inference.tta=ms_flip", "inference.scales=[1.0,1.5]",
        "postprocess=small_components", "postprocess.min_size=4", f"output={tmp_path / 'e'}",
    )  # fmt: skip
    assert again["mIoU"] == test["mIoU"]
    assert again["without_postprocess"]["mIoU"] == test["without_postprocess"]["mIoU"]
    assert "tta: ms_flip" in (tmp_path / "resolved_config.yaml").read_text()
