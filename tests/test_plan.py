"""segexp-plan: from a dataset to a preset and its table, and the mistakes it refuses."""

import pytest
import yaml

from tests.conftest import run_cli
from tests.planning.test_fingerprint import palette_folders

pytestmark = pytest.mark.slow

ROWS = ("model", "resolution", "training crop", "batch", "learning rate", "mean / std",
        "void label", "palette", "test-time augmentation", "time budget")  # fmt: skip


def plan(tmp_path, root, *args) -> tuple[int, str]:
    """The command's exit status and what it printed (the tools log to the console)."""
    given = ["dataset=folder", f"dataset.root={root}", "dataset.num_classes=3", "budget=1min"]
    out = f"out={tmp_path / 'myconf'}"
    result = run_cli(*given, out, *args, cwd=tmp_path, module="segexp.plan")
    return result.returncode, result.stdout + result.stderr


def test_a_plan_prints_each_choice_with_its_reason_and_writes_a_preset(tmp_path):
    root = palette_folders(tmp_path / "data", [(40, 60), (48, 64), (40, 60), (44, 60)])
    status, text = plan(tmp_path, root)
    assert status == 0, text[-3000:]
    table = text[text.index("choice ") :]
    for row in ROWS:
        assert f"\n{row} " in "\n" + table, row
    assert "dataset.ignore_index=3" in table and "Traceback" not in text
    assert "python -m segexp --config-dir" in text and "+experiment=folder_plan" in text
    preset = tmp_path / "myconf" / "experiment" / "folder_plan.yaml"
    assert preset.is_file()
    # The dataset config: segexp's folder config and the keys that differ from it.
    data = yaml.safe_load((tmp_path / "myconf" / "dataset" / "folder_plan.yaml").read_text())
    assert data["defaults"] == ["folder", "_self_"] and data["root"] == str(root)
    assert (data["num_classes"], data["ignore_index"], data["name"]) == (3, 3, "folder_plan")
    assert "train" not in data and "layout" not in data
    # Run again: the preset is kept unless overwrite=true.
    status, text = plan(tmp_path, root)
    assert status == 1 and "folder_plan.yaml already exists: give another out= or overwrite" in text
    assert plan(tmp_path, root, "overwrite=true")[0] == 0


def test_a_dataset_with_fatal_problems_gets_no_preset(tmp_path):
    root = palette_folders(tmp_path / "data", [(40, 60), (48, 64)])
    (root / "train" / "masks" / "1.png").write_bytes(b"broken")
    status, text = plan(tmp_path, root)
    assert status == 1 and "the label audit found problems, so there is no plan" in text
    assert "Traceback" not in text and not (tmp_path / "myconf" / "experiment").exists()


def test_a_budget_too_small_for_one_epoch_is_refused(tmp_path):
    root = palette_folders(tmp_path / "data", [(40, 60), (48, 64)])
    status, text = plan(tmp_path, root, "budget=0.01s")
    assert status == 1 and "budget=0.01s cannot fit one epoch even at the smallest" in text
    assert not (tmp_path / "myconf" / "experiment").exists()
