"""Loggers as a list: TensorBoard, CSV and MLflow receive the same scalars and final metrics."""

import csv

import pytest
from mlflow import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from segexp.training.fit import fit
from tests.conftest import TINY, compose_config


def _rows(path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.slow
def test_every_logger_gets_the_same_scalars_hparams_and_final_metrics(tmp_path):
    loggers = "logger=[tensorboard,csv,mlflow]"
    info = {"overrides": [loggers, "aug=light"], "choices": {"aug": "light"}}  # as train.py gives
    summary = fit(compose_config([*TINY, loggers, "aug=light"]), tmp_path, info)
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    tb_tags = set(events.Tags()["scalars"])

    steps, epochs = _rows(tmp_path / "metrics_steps.csv"), _rows(tmp_path / "metrics_epochs.csv")
    assert [r["step"] for r in steps] == ["2", "4", "6", "8"]
    assert [r["epoch"] for r in epochs][-2:] == ["1", "2"]
    csv_tags = {k for r in steps + epochs for k, v in r.items() if v and k not in ("step", "epoch")}
    (final,) = _rows(tmp_path / "final.csv")
    assert float(final["final/test_mIoU"]) == summary["test"]["mIoU"]
    assert final["aug"] == "light" and final["seed"] == "0"

    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").resolve().as_uri())
    run_id = (tmp_path / "mlflow_run_id").read_text().strip()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == tmp_path.name
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


def test_logger_none_writes_no_logs(tmp_path):
    fit(compose_config([*TINY, "logger=none", "trainer.epochs=1"]), tmp_path)
    assert not list(tmp_path.glob("events.out.tfevents*"))
    assert not (tmp_path / "metrics_epochs.csv").exists()
