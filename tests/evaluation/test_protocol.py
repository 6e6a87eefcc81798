"""The evaluation protocol a run records, from its config and splits."""

import pytest

from segexp.config.trainer import trainer_settings
from segexp.evaluation.protocol import SOURCES, evaluation_protocol
from segexp.sweeps.protocol import differences
from segexp.training.experiment import build_data


def _protocol(tiny_config, *overrides):
    cfg = tiny_config(*overrides)
    return evaluation_protocol(cfg, build_data(cfg, trainer_settings(cfg.trainer)))


@pytest.mark.slow  # seven composed configs
def test_each_setting_that_changes_scores_changes_the_protocol(tiny_config):
    base = _protocol(tiny_config)
    assert set(base) == {k for k in SOURCES if "." not in k}
    assert base["labels"]["class_names"][1] == "disc" and base["test_files"]["count"] == 8
    changed = {
        "dataset.eval_resize=0.5": "resolution.eval_resize",
        "dataset.ignore_index=254": "labels.ignore_index",
        "dataset.test.num_samples=6": "test_files.count",
        "test.inference.tta=flip": "inference.tta",
        "dataset.train.num_samples=12": "trained_on.train.count",
    }
    for override, leaf in changed.items():
        found = differences(base, _protocol(tiny_config, override))
        assert leaf in found[leaf.split(".")[0]], (override, found)
    assert differences(base, _protocol(tiny_config, "aug=strong", "seed=3")) == {}
