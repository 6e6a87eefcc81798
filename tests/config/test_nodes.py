"""Every node that builds an object: its keys against its constructor, cheap ones built early."""

import sys
from pathlib import Path

import pytest

from segexp.config.checks import validate
from segexp.config.nodes import BUILT_EARLY, check_nodes
from segexp.config.paths import CONFIG_DIR
from segexp.errors import SegexpError
from tests.conftest import TINY, compose_config

MISSPELT = {
    "test pass tiling": (
        ["+test.inference.tile_bach=4"],
        "test.inference.tile_bach: segexp.evaluation.pipeline.InferenceOptions takes no argument "
        "'tile_bach'; did you mean test.inference.tile_batch?",
    ),
    "mlflow logger": (
        ["logger=[tensorboard,mlflow]", "+logger.mlflow.tracking_url=file:/tmp/x"],
        "logger.mlflow.tracking_url: segexp.training.loggers.mlflow_writer.MLflowWriter takes no "
        "argument 'tracking_url'; did you mean logger.mlflow.tracking_uri?",
    ),
    "loss": (["loss=focal", "+loss.gama=2"], "loss.gama: segexp.losses.focal.FocalLoss takes no"),
    "optimizer": (
        ["optimizer=sgd", "+optimizer.momentun=0.9"],
        "did you mean optimizer.momentum?",
    ),
    "augmentation": (
        ["+aug.train.transforms.0.heigth=8"],
        "did you mean aug.train.transforms.0.height?",
    ),
    "post-processing": (
        ["postprocess@test.postprocess=small_components", "+test.postprocess.min_area=9"],
        "test.postprocess.min_area: ",
    ),
}


@pytest.mark.parametrize("case", MISSPELT, ids=list(MISSPELT))
def test_a_misspelt_argument_of_any_node_is_named_with_what_it_takes(case):
    overrides, message = MISSPELT[case]
    with pytest.raises(SegexpError) as err:
        check_nodes(compose_config([*TINY, *overrides]))
    assert message in str(err.value) and "it takes " in str(err.value)
    assert "\n" not in str(err.value)


BAD_VALUES = {
    "tta": (["test.inference.tta=flp"], "test.inference: inference.tta='flp' is not one of"),
    "tile": (["test.inference.tile=[0,64]"], "test.inference: inference.tile=[0, 64]"),
    "crop": (["aug.train.transforms.0.height=-3"], "aug.train: RandomCrop: 1 validation error"),
    "flip probability": (["aug=light", "aug.train.transforms.1.p=2"], "aug.train: HorizontalFlip"),
}


@pytest.mark.parametrize("case", BAD_VALUES, ids=list(BAD_VALUES))
def test_a_constructors_own_check_speaks_before_any_work(case):
    overrides, message = BAD_VALUES[case]
    with pytest.raises(SegexpError) as err:
        validate(compose_config([*TINY, *overrides]))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_crf_without_its_extra_is_refused_before_training(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydensecrf", None)
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    with pytest.raises(SegexpError, match=r"test\.postprocess: postprocess=crf needs pydensecrf2"):
        validate(compose_config([*TINY, "postprocess@test.postprocess=crf"]))


GROUPS = ("dataset", "model", "loss", "aug", "optimizer", "scheduler", "logger", "inference")


@pytest.mark.parametrize("group", GROUPS)
def test_every_shipped_option_passes(group, tmp_path):
    """The guard refuses mistakes only: every option segexp ships passes it."""
    at = "inference@test.inference" if group == "inference" else group
    for option in sorted((Path(CONFIG_DIR) / group).glob("*.yaml")):
        overrides = [f"{at}={option.stem}"]
        if group == "dataset" and not option.stem.startswith("synthetic"):
            overrides.append(f"dataset.root={tmp_path}")
        check_nodes(compose_config(overrides))
    assert {"test.inference", "test.postprocess", "aug.train"} <= set(BUILT_EARLY)


def test_a_target_that_cannot_be_imported_is_named():
    with pytest.raises(
        SegexpError, match=r"loss\._target_=segexp\.losses\.nope cannot be imported"
    ):
        check_nodes(compose_config([*TINY, "loss._target_=segexp.losses.nope"]))
