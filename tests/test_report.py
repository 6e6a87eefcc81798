"""segexp.report: the report of an interrupted sweep lists the unfinished job."""

import csv
import json

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def _metrics(miou: float) -> dict:
    per_class = {"a": miou, "b": miou}
    return {"mIoU": miou, "mDice": miou, "pixel_acc": 0.9, "per_class_iou": per_class}


def test_report_of_an_interrupted_sweep_lists_the_unfinished_job(tmp_path):
    done, running = tmp_path / "0", tmp_path / "1"
    for job, seed in ((done, 0), (running, 1)):
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- aug=none\n- seed={seed}\n")
    summary = {"status": "completed", "overrides": ["aug=none", "seed=0"], "train_time_s": 3.0}
    summary |= {"images_per_s": 10.0, "val": _metrics(0.5), "test": _metrics(0.4)}
    (done / "summary.json").write_text(json.dumps(summary))
    result = run_cli(f"sweep={tmp_path}", cwd=tmp_path, module="segexp.report")
    assert result.returncode == 0, result.stdout[-2000:]
    report = (tmp_path / "report.md").read_text()
    assert "2 jobs: 1 completed, 0 failed, 0 interrupted, 1 without summary.json" in report
    assert "- `1` (aug=none seed=1): unfinished: no summary.json" in report
    row = next(csv.DictReader((tmp_path / "report.csv").open()))
    assert (
        row["seeds"] == "1" and float(row["test_mIoU_mean"]) == 0.4 and row["test_mIoU_std"] == ""
    )
    missing = run_cli(f"sweep={tmp_path / 'missing'}", cwd=tmp_path, module="segexp.report")
    assert missing.returncode == 1 and "does not exist" in missing.stdout
