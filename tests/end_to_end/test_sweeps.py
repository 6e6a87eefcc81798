"""Sweeps from the command line: the report, HParams, failure tolerance and resume."""

import csv
import json
import shutil
import statistics
import subprocess
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from segexp.metrics.per_image import miou_from_counts, read_per_image_csv
from tests.conftest import TINY, run_cli

pytestmark = pytest.mark.slow

SWEEP = [*TINY, "trainer.epochs=1", "aug=none,light", "seed=0,1"]


# Job folders: the job number, then what the job sets among the swept keys (TINY is left out).
JOBS = ["0_aug=none,seed=0", "1_aug=none,seed=1", "2_aug=light,seed=0", "3_aug=light,seed=1"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A 2 x 2 sweep (aug x seed) of tiny runs, run once for the tests below."""
    root = tmp_path_factory.mktemp("sweep")
    result = run_cli("--multirun", *SWEEP, f"hydra.sweep.dir={root / 'sweep'}", cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "sweep", result


def _per_image_miou(job_dir: Path) -> float:
    _, _, inter, union = read_per_image_csv(job_dir / "per_image.csv")
    return miou_from_counts(inter, union)


def test_sweep_report_equals_numbers_recomputed_from_the_jobs(sweep):
    sweep_dir, _ = sweep
    for name in ("report.md", "report.csv", "report.png"):
        assert (sweep_dir / name).is_file()
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == [*JOBS, "gallery"]
    summaries = {
        n: json.loads((sweep_dir / JOBS[n] / "summary.json").read_text()) for n in range(4)
    }
    # Hydra orders the jobs aug-major: 0,1 = none (seeds 0,1); 2,3 = light.
    assert "aug=none" in summaries[0]["overrides"] and "seed=1" in summaries[1]["overrides"]
    rows = {r["variant"]: r for r in csv.DictReader((sweep_dir / "report.csv").open())}
    assert set(rows) == {"aug=none", "aug=light"}
    for variant, jobs in (("aug=none", (0, 1)), ("aug=light", (2, 3))):
        row = rows[variant]
        assert int(row["seeds"]) == 2
        for split in ("val", "test"):
            values = [summaries[j][split]["mIoU"] for j in jobs]
            assert float(row[f"{split}_mIoU_mean"]) == pytest.approx(statistics.mean(values))
            assert float(row[f"{split}_mIoU_std"]) == pytest.approx(statistics.stdev(values))
            thread = [summaries[j][split]["per_class_iou"]["thread"] for j in jobs]
            assert float(row[f"{split}_iou_thread_mean"]) == pytest.approx(statistics.mean(thread))
        times = [summaries[j]["train_time_s"] for j in jobs]
        assert float(row["train_time_s_mean"]) == pytest.approx(statistics.mean(times))
    for j in range(4):  # the per-image counts reproduce the run's own test mIoU
        assert _per_image_miou(sweep_dir / JOBS[j]) == pytest.approx(summaries[j]["test"]["mIoU"])
    expected = statistics.mean(
        summaries[light]["test"]["mIoU"] - summaries[none]["test"]["mIoU"]
        for none, light in ((0, 2), (1, 3))
    )
    report = (sweep_dir / "report.md").read_text()
    line = next(r for r in report.splitlines() if r.startswith("| aug |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2:5] == ["none", "light", "0,1"]
    assert float(cells[5]) == pytest.approx(expected, abs=6e-5)  # printed with 4 decimals


def test_every_job_logs_its_hparams_and_final_metrics(sweep):
    sweep_dir, _ = sweep
    events = EventAccumulator(str(sweep_dir / JOBS[2]))
    events.Reload()
    tags = events.PluginTagToContent("hparams")
    assert set(tags) == {"_hparams_/session_start_info", "_hparams_/session_end_info"}
    content = tags["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    hparams = {k: v.string_value or v.number_value for k, v in start.hparams.items()}
    assert hparams["aug"] == "light" and hparams["model"] == "unet"
    assert hparams["seed"] == "0" and hparams["model.net.base_channels"] == 4
    assert "_hparams_/experiment" not in tags  # one record for the sweep, not one per job
    summary = json.loads((sweep_dir / JOBS[2] / "summary.json").read_text())
    final = events.Scalars("~final/test_mIoU")
    assert final[-1].value == pytest.approx(summary["test"]["mIoU"])


def test_sweep_hparams_table_lists_only_the_swept_keys(sweep):
    sweep_dir, _ = sweep
    (record,) = sweep_dir.glob("events.out.tfevents.*.hparams")  # the sweep folder's own run
    events = EventAccumulator(str(record)).Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/experiment"]
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content).experiment
    domains = {
        h.name: [v.string_value or v.number_value for v in h.domain_discrete.values]
        for h in experiment.hparam_infos
    }
    assert domains == {"aug": ["light", "none"], "seed": ["0", "1"]}  # discrete, no "None"
    tags = [m.name.tag for m in experiment.metric_infos]
    assert tags == [
        f"~final/{s}_{k}" for s in ("val", "test") for k in ("mIoU", "mDice", "pixel_acc")
    ]


def test_resumed_sweep_runs_only_the_jobs_not_completed(sweep, tmp_path):
    sweep_dir = tmp_path / "sweep"
    shutil.copytree(sweep[0], sweep_dir)
    (sweep_dir / JOBS[3] / "summary.json").write_text('{"status": "failed", "reason": "killed"}')
    (sweep_dir / "report.md").unlink()
    kept = {n: (sweep_dir / JOBS[n] / "summary.json").read_text() for n in range(3)}
    result = run_cli("--multirun", *SWEEP, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    console = result.stdout + result.stderr
    assert console.count("skipped, already completed with this config") == 3
    for n in range(3):
        assert (sweep_dir / JOBS[n] / "summary.json").read_text() == kept[n]
    rerun = json.loads((sweep_dir / JOBS[3] / "summary.json").read_text())
    assert rerun["status"] == "completed" and "seed=1" in rerun["overrides"]
    assert "4 jobs: 4 completed" in (sweep_dir / "report.md").read_text()


def test_failing_job_does_not_stop_a_parallel_sweep(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_cli(
        "--multirun",
        *TINY,
        "trainer.epochs=1",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "optimizer.lr=0.001,-1",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    ok = json.loads((sweep_dir / "0_optimizer.lr=0.001" / "summary.json").read_text())
    failed = json.loads((sweep_dir / "1_optimizer.lr=-1" / "summary.json").read_text())
    assert ok["status"] == "completed"
    assert failed["status"] == "failed" and "optimizer.lr=-1 is not allowed" in failed["reason"]
    console = (result.stdout + result.stderr).splitlines()
    last_error = [line for line in console if "did not complete" in line]
    assert len(last_error) == 1
    assert last_error[0].endswith(
        "1 of 2 jobs did not complete: 1_optimizer.lr=-1: "
        "optimizer.lr=-1 is not allowed: give a number > 0, e.g. 1e-3"
    )
    report = (sweep_dir / "report.md").read_text()
    assert "## Jobs that did not complete" in report and "optimizer.lr=-1 is not" in report
    assert not (sweep_dir / "1_optimizer.lr=-1" / "per_image.csv").exists()


ADAPTIVE = [
    *TINY, "trainer.epochs=1", "hydra/sweeper=segexp_decide", "optimizer.lr=0.001,0.002",
    "hydra.sweeper.max_seeds=3", "hydra.sweeper.min_effect=0.000001", "scheduler.warmup_steps=0",
]  # fmt: skip


def test_adaptive_seeds_decide_in_rounds_through_a_parallel_launcher(tmp_path):
    """Rounds through joblib's parallel processes (any launcher: the sweeper hands each round
    to the configured one); a rerun repeats the same rounds (sweeps/test_adaptive.py)."""
    sweep_dir = tmp_path / "sweep"
    parallel = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    result = run_cli("--multirun", *ADAPTIVE, *parallel, f"hydra.sweep.dir={sweep_dir}",
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((sweep_dir / "decisions.json").read_text())
    (outcome,) = record["outcomes"]
    assert outcome["variant"] == "optimizer.lr=0.002" and record["baseline"] == "optimizer.lr=0.001"
    folders = sorted(p.name for p in sweep_dir.iterdir() if (p / "summary.json").is_file())
    assert len(folders) == record["jobs_run"] == sum(r["jobs"] for r in record["rounds"])
    first_round = [f"{n}_optimizer.lr={lr},seed={s}" for n, (lr, s) in
                   enumerate([("0.001", 0), ("0.001", 1), ("0.002", 0), ("0.002", 1)])]  # fmt: skip
    assert folders[:4] == first_round
    seeds = {name.rsplit("=", 1)[1] for name in folders}
    rounds = len(record["rounds"])
    assert outcome["seeds"] == len(seeds) == 2 + rounds - 1 and outcome["round"] == rounds
    assert outcome["decision"] != "open"
    report = (sweep_dir / "report.md").read_text()
    assert "## Decisions (adaptive seeds)" in report and f"Jobs run: {len(folders)}" in report


def test_any_runs_are_compared_with_the_statistics_and_pictures_of_a_sweep(sweep, tmp_path):
    sweep_dir, _ = sweep
    entries = [sweep_dir / JOBS[0], sweep_dir / JOBS[1], sweep_dir / JOBS[2]]
    out = tmp_path / "report"
    quoted = ",".join(f"'{e}'" for e in entries)  # job folder names hold "=" and ","
    result = run_cli(f"runs=[{quoted}]", f"baseline='{entries[0]}'", f"output={out}",
                     cwd=tmp_path, module="segexp.report")  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    page = (out / "report.md").read_text()
    line = next(r for r in page.splitlines() if r.startswith("| variant | `-` | aug=none |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    summaries = [json.loads((e / "summary.json").read_text()) for e in (entries[0], entries[2])]
    assert cells[3:5] == ["aug=light", "0"]
    expected = summaries[1]["test"]["mIoU"] - summaries[0]["test"]["mIoU"]
    assert float(cells[5]) == pytest.approx(expected, abs=6e-5)
    assert (out / "gallery").is_dir() and (out / "calibration.png").is_file()
    assert "## What changed" in page and "gallery/0_aug=light_vs_aug=none_confusion.png" in page
