"""A run from before the package layout: its stored config still evaluates, predicts, exports."""

import json
import shutil

import pytest

from segexp.training.experiment import load_run
from tests.conftest import REPO, evaluate_tool, export_tool, predict_tool, write_split

pytestmark = pytest.mark.slow

LEGACY = REPO / "tests" / "fixtures" / "legacy_run_v0.1"


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
