"""A plan written as a config folder: run as the user runs it, it composes to the planned keys."""

import pytest
import yaml

from segexp.errors import SegexpError
from segexp.planning.preset import check_preset, dataset_preset, write_preset
from segexp.planning.rules import Choice
from tests.conftest import compose_config, run_cli

CHOICES = [
    Choice("model", {"model": "unet", "model.net.depth": "auto"}, "no weights installed"),
    Choice("resolution", {"dataset.resize": 0.5}, "measured"),
    Choice("training crop", {"dataset.image_size": [32, 48]}, "measured"),
    Choice(
        "class imbalance",
        {"loss.losses.ce.class_weights": "auto", "dataset.sampler": "rare_class"},
        "rare classes",
    ),
    Choice("time budget", {"trainer.time_budget": "5min", "trainer.epochs": None}, "given"),
]


@pytest.mark.slow
@pytest.mark.parametrize("on_base", [True, False], ids=["on its base config", "whole"])
def test_the_preset_composes_to_the_planned_keys_and_says_why(tmp_path, on_base):
    out = tmp_path / "myconf"
    paths = check_preset(out, "mine_plan", overwrite=False)
    planned = compose_config(["dataset.train.num_samples=48"]).dataset
    base = ("synthetic", compose_config([]).dataset) if on_base else None
    dataset = dataset_preset(planned, "mine_plan", CHOICES, base)
    if on_base:  # only what differs from the base config
        assert dataset["defaults"] == ["synthetic", "_self_"]
        assert dataset["train"] == {"num_samples": 48} and "val" not in dataset
    write_preset(paths, "mine_plan", dataset, CHOICES, "a test")
    result = run_cli(f"--config-dir={out}", "+experiment=mine_plan", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    cfg = yaml.safe_load(result.stdout)
    assert cfg["model"]["net"]["_target_"] == "segexp.models.unet.UNet"
    assert cfg["model"]["net"]["depth"] == "auto"
    data = cfg["dataset"]
    assert (data["name"], data["resize"], data["image_size"]) == ("mine_plan", 0.5, [32, 48])
    assert data["sampler"] == "rare_class" and data["train"]["num_samples"] == 48
    assert data["val"] == compose_config([]).dataset.val  # (the base's, kept)
    assert cfg["loss"]["losses"]["ce"]["class_weights"] == "auto"
    assert (cfg["trainer"]["time_budget"], cfg["trainer"]["epochs"]) == ("5min", None)
    text = paths["experiment"].read_text()
    assert "#   training crop: measured" in text and "+experiment=mine_plan" in text


def test_an_existing_preset_or_a_shipped_name_is_refused(tmp_path):
    out = tmp_path / "myconf"
    paths = check_preset(out, "mine_plan", overwrite=False)
    dataset = dataset_preset(compose_config([]).dataset, "mine_plan", CHOICES, None)
    write_preset(paths, "mine_plan", dataset, CHOICES, "a test")
    before = paths["experiment"].read_text()
    with pytest.raises(SegexpError, match=r"mine_plan\.yaml already exists: .*overwrite=true"):
        check_preset(out, "mine_plan", overwrite=False)
    assert check_preset(out, "mine_plan", overwrite=True) == paths
    assert paths["experiment"].read_text() == before  # checking writes nothing
    with pytest.raises(SegexpError, match=r"preset=isbi2012 is the name of segexp's own dataset"):
        check_preset(out, "isbi2012", overwrite=True)
