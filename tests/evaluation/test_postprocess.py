"""The post-processors: small components filled by their surroundings, the dense CRF, none."""

import sys

import pytest
import torch

from segexp.errors import SegexpError
from segexp.evaluation.postprocess import DenseCRF, SmallComponents, build_postprocess


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
    pytest.importorskip(
        "pydensecrf.densecrf",
        reason="segexp[crf] is not installed (it builds from source): make test-all runs this",
    )
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
