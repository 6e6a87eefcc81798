"""Earlier versions: a run from before the package layout still evaluates, predicts, exports; a
key renamed since 0.1 answers with its new name."""

import json
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from segexp.config.legacy import RENAMED_KEYS
from segexp.config.paths import CONFIG_DIR
from segexp.training.experiment import load_run
from tests.conftest import (
    REPO,
    compose_config,
    evaluate_tool,
    export_tool,
    predict_tool,
    write_split,
)

LEGACY = REPO / "tests" / "fixtures" / "legacy_run_v0.1"


@pytest.mark.slow
def test_a_checkpoint_written_before_the_package_layout_still_loads(tmp_path):
    run = tmp_path / "legacy"
    shutil.copytree(LEGACY, run)
    expected = json.loads((run / "summary.json").read_text())["test"]
    result = evaluate_tool(f"run={run}", "split=test")
    # Its trainer.precision is auto: bf16 on a CPU with AMX, fp32 where it was made. A few pixels
    # of this untrained model's argmax can then differ (seen: mIoU 0.16722 against 0.16726).
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-3), key
    images = tmp_path / "images"
    write_split(load_run(run, device="cpu"), "test", tmp_path / "data")
    shutil.copytree(tmp_path / "data" / "images", images)
    assert len(predict_tool(f"run={run}", f"input={images}", f"output={tmp_path / 'pred'}")) == 8
    assert export_tool(f"run={run}", "format=torchscript").is_file()


def _keys_of_every_option() -> set[str]:
    """Every key of the composed config under each option of the model, optimizer and logger
    groups (where the renamed keys went)."""
    keys: set[str] = set()
    for group in ("model", "optimizer", "logger"):
        for option in sorted((Path(CONFIG_DIR) / group).glob("*.yaml")):
            container = OmegaConf.to_container(compose_config([f"{group}={option.stem}"]))
            keys |= set(_flat(container))
    return keys


def _flat(node, path=""):
    if isinstance(node, dict):
        for key, child in node.items():
            full = f"{path}.{key}" if path else str(key)
            yield full
            yield from _flat(child, full)


def test_every_renamed_key_points_at_a_key_that_exists_now():
    now = _keys_of_every_option()
    assert {old for old in RENAMED_KEYS if old in now} == set()  # the old names are gone
    assert {new for new in RENAMED_KEYS.values() if new not in now} == set()
