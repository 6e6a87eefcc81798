"""Loggers as a list, from the command line: TensorBoard, CSV and MLflow receive the same scalars,
hyperparameters (under the same names) and final metrics; a logger that fails at the end costs
its own record, never the run."""

import csv
import json

import pytest
from mlflow import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from segexp.training.fit import fit
from segexp.training.loggers.csv_writer import CSVWriter
from segexp.training.loggers.mlflow_writer import MLflowWriter
from tests.conftest import TINY, compose_config, segexp_cli

LOGGERS = "logger=[tensorboard,csv,mlflow]"


def _rows(path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def _mlflow_run(run_dir):
    client = MlflowClient(tracking_uri=(run_dir / "mlruns").resolve().as_uri())
    run_id = (run_dir / "mlflow_run_id").read_text().strip()
    return client, run_id, client.get_run(run_id)


def _tensorboard_hparams(run_dir) -> dict:
    """The run's HParams session: {name: value} (a string, number or bool)."""
    content = EventAccumulator(str(run_dir)).Reload().PluginTagToContent("hparams")
    start = HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams.items()
    return {key: getattr(value, value.WhichOneof("kind")) for key, value in hparams}


@pytest.mark.slow
def test_every_logger_gets_the_same_scalars_hparams_and_final_metrics(tmp_path):
    run_dir = tmp_path / "run"
    assert segexp_cli(*TINY, LOGGERS, "aug=light", f"hydra.run.dir={run_dir}") == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["logger_errors"] == []
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    tb_tags = set(events.Tags()["scalars"])

    steps, epochs = _rows(run_dir / "metrics_steps.csv"), _rows(run_dir / "metrics_epochs.csv")
    assert [r["step"] for r in steps] == ["2", "4", "6", "8"]
    assert [r["epoch"] for r in epochs][-2:] == ["1", "2"]
    csv_tags = {k for r in steps + epochs for k, v in r.items() if v and k not in ("step", "epoch")}
    (final,) = _rows(run_dir / "final.csv")
    assert float(final["final/test_mIoU"]) == summary["test"]["mIoU"]
    assert final["aug"] == "light" and final["seed"] == "0"

    client, run_id, run = _mlflow_run(run_dir)
    assert run.info.status == "FINISHED" and run.info.run_name == run_dir.name
    assert run.data.params["aug"] == "light"
    assert run.data.metrics["final/val_mIoU"] == summary["val"]["mIoU"]
    history = client.get_metric_history(run_id, "val/mIoU")
    assert [m.step for m in history] == [1, 2]
    by_epoch = {int(r["epoch"]): float(r["val/mIoU"]) for r in epochs if r.get("val/mIoU")}
    assert {m.step: m.value for m in history} == by_epoch
    tb_final = {t for t in tb_tags if t.startswith("~final/")}  # TensorBoard: sorted last
    assert tb_tags - tb_final == csv_tags
    assert csv_tags | {t.replace("~final/", "final/") for t in tb_final} == set(run.data.metrics)
    artifacts = [a.path for a in client.list_artifacts(run_id)]
    assert "text" in artifacts  # the config, as text

    # Hydra's choices, as the command line gives them (postprocess@test.postprocess, ...), under
    # one name in every logger: where the choice lands in the config.
    params = {k: v for k, v in final.items() if not k.startswith("final/")}
    assert params["test.postprocess"] == "none" and params["test.inference"] == "default"
    assert params == run.data.params
    assert set(_tensorboard_hparams(run_dir)) == set(params)


@pytest.mark.slow
def test_a_logger_failing_at_the_end_leaves_the_run_completed(tmp_path, monkeypatch, capsys):
    def refused(self, hparams, metrics):
        raise RuntimeError("tracking server said no\nand a second line")

    def full(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(MLflowWriter, "log_hparams", refused)
    monkeypatch.setattr(CSVWriter, "close", full)
    run_dir = tmp_path / "run"
    assert segexp_cli(*TINY, "trainer.epochs=1", LOGGERS, f"hydra.run.dir={run_dir}") == 0

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and 0 <= summary["test"]["mIoU"] <= 1
    assert summary["logger_errors"] == [
        {
            "logger": "mlflow",
            "call": "log_hparams",
            "error": "RuntimeError: tracking server said no",
        },
        {"logger": "csv", "call": "close", "error": "OSError: [Errno 28] No space left on device"},
    ]
    out = capsys.readouterr()
    console = out.out + out.err
    assert "Traceback" not in console and "ERROR" not in console
    warnings = [line for line in console.splitlines() if "WARNING" in line and "logger " in line]
    assert len(warnings) == 2, console[-3000:]
    assert "logger mlflow failed in log_hparams" in warnings[0]
    assert warnings[0].endswith("RuntimeError: tracking server said no")
    # The others received their calls: CSV and TensorBoard their final hparams, and MLflow,
    # failed before it, still its close (its run is terminated).
    assert float(_rows(run_dir / "final.csv")[0]["final/test_mIoU"]) == summary["test"]["mIoU"]
    assert _tensorboard_hparams(run_dir)["test.postprocess"] == "none"
    assert _mlflow_run(run_dir)[2].info.status == "FINISHED"


@pytest.mark.slow
def test_a_resume_that_changes_a_setting_keeps_mlflow_logging(tmp_path):
    run_dir = tmp_path / "run"
    first = ["trainer.epochs=1", "logger=mlflow", f"hydra.run.dir={run_dir}"]
    assert segexp_cli(*TINY, *first) == 0
    assert segexp_cli(f"resume={run_dir}", "trainer.epochs=2") == 0  # the run, trained longer
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["logger_errors"] == []
    client, run_id, run = _mlflow_run(run_dir)
    # MLflow never changes a parameter: the first session's stays, the tag holds the new value.
    assert run.data.params["trainer.epochs"] == "1" and run.data.tags["trainer.epochs"] == "2"
    assert run.data.metrics["final/test_mIoU"] == summary["test"]["mIoU"]
    assert [m.step for m in client.get_metric_history(run_id, "val/mIoU")] == [1, 2]


def test_logger_none_writes_no_logs(tmp_path):
    fit(compose_config([*TINY, "logger=none", "trainer.epochs=1"]), tmp_path)
    assert not list(tmp_path.glob("events.out.tfevents*"))
    assert not (tmp_path / "metrics_epochs.csv").exists()
