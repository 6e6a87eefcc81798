"""Sweeps: per-image scores, the sweep report, HParams, failure tolerance and resume."""

import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from segexp.metrics.confusion import ConfusionMatrix
from segexp.metrics.per_image import PerImageScores, miou_from_counts, read_per_image_csv
from segexp.sweeps.jobs import Job
from segexp.sweeps.paired import bootstrap_ci

from .conftest import REPO, TINY, run_cli

SWEEP = [*TINY, "trainer.epochs=1", "aug=none,light", "seed=0,1"]
# Job folders: the job number, then what the job sets among the swept keys (TINY is left out).
JOBS = ["0_aug=none,seed=0", "1_aug=none,seed=1", "2_aug=light,seed=0", "3_aug=light,seed=1"]


def run_segexp(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m segexp ARGS` importing this checkout's segexp, whatever is installed."""
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, "-m", "segexp", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_per_image_counts_sum_to_the_split_confusion_matrix():
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (5, 9, 7), generator=gen)
    target[target == 3] = 255  # class 3 never appears: ignore pixels instead
    prediction = torch.randint(0, 4, (5, 9, 7), generator=gen)
    scores = PerImageScores(num_classes=4, ignore_index=255)
    scores.add(prediction[:2], target[:2])
    for i in range(2, 5):  # one image at a time, as the evaluation loop calls it
        scores(i, prediction[i], target[i])
    intersection, union = scores.arrays()
    for i in range(5):  # independent: boolean masks per image and class
        valid = target[i] != 255
        for c in range(4):
            p, t = (prediction[i] == c) & valid, (target[i] == c) & valid
            assert intersection[i, c] == (p & t).sum().item()
            assert union[i, c] == (p | t).sum().item()
    confusion = ConfusionMatrix(4, 255)
    confusion.update(prediction, target)
    assert miou_from_counts(intersection, union) == pytest.approx(confusion.compute()["mIoU"])


def _fake_job(path: Path, seed: str, inter: np.ndarray, union: np.ndarray) -> Job:
    path.mkdir(parents=True)
    with (path / "per_image.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "inter_a", "union_a", "inter_b", "union_b"])
        for i, (ir, ur) in enumerate(zip(inter, union, strict=True)):
            writer.writerow([i, ir[0], ur[0], ir[1], ur[1]])
    miou = miou_from_counts(inter, union)
    return Job(path.name, path, [], seed, "completed", summary={"test": {"mIoU": miou}})


def test_bootstrap_interval_agrees_with_a_plain_resampling_loop(tmp_path):
    rng = np.random.default_rng(1)
    union = rng.integers(50, 100, size=(40, 2))
    base_inter = (union * rng.uniform(0.3, 0.7, size=(40, 2))).astype(int)
    better_inter = np.minimum(union, base_inter + rng.integers(0, 15, size=(40, 2)))
    a = _fake_job(tmp_path / "a", "0", base_inter, union)
    b = _fake_job(tmp_path / "b", "0", better_inter, union)
    low, high = bootstrap_ci([(a, b)], replicates=4000)
    diffs = []
    loop_rng = np.random.default_rng(123)
    for _ in range(4000):
        idx = loop_rng.integers(0, 40, size=40)
        diffs.append(
            miou_from_counts(better_inter[idx], union[idx])
            - miou_from_counts(base_inter[idx], union[idx])
        )
    ref_low, ref_high = np.percentile(diffs, [2.5, 97.5])
    assert low == pytest.approx(ref_low, abs=0.004) and high == pytest.approx(ref_high, abs=0.004)
    assert 0 < low < high  # every image improved or stayed: the interval excludes zero
    same_low, same_high = bootstrap_ci([(a, _fake_job(tmp_path / "c", "0", base_inter, union))])
    assert same_low == 0 and same_high == 0


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A 2 x 2 sweep (aug x seed) of tiny runs, run once for the tests below."""
    root = tmp_path_factory.mktemp("sweep")
    result = run_segexp("--multirun", *SWEEP, f"hydra.sweep.dir={root / 'sweep'}", cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "sweep", result


def _per_image_miou(job_dir: Path) -> float:
    _, _, inter, union = read_per_image_csv(job_dir / "per_image.csv")
    return miou_from_counts(inter, union)


def test_sweep_report_equals_numbers_recomputed_from_the_jobs(sweep):
    sweep_dir, _ = sweep
    for name in ("report.md", "report.csv", "report.png"):
        assert (sweep_dir / name).is_file()
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == JOBS
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
    result = run_segexp("--multirun", *SWEEP, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
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
    result = run_segexp(
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


def test_job_folders_name_only_the_swept_keys_of_command_and_preset():
    from hydra._internal.config_loader_impl import get_overrides_dirname
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from segexp.config.resolvers import job_dir_resolver
    from segexp.sweeps.naming import name_jobs_by_swept_keys

    config = OmegaConf.create(
        {
            "hydra": {
                "overrides": {
                    "task": ["experiment=aug_ablation", "trainer.epochs=3", "lr=1e-3,1e-2"],
                    "hydra": ["hydra.sweep.dir=x"],
                },
                "sweeper": {"params": {"aug": "none,strong", "seed": "0,1,2"}},
                "job": {"config": {"override_dirname": {"exclude_keys": ["name"]}}},
            }
        }
    )
    name_jobs_by_swept_keys(config)
    excluded = ["name", "experiment", "trainer.epochs"]
    assert config.hydra.job.config.override_dirname.exclude_keys == excluded
    appended = config.hydra.overrides.hydra[-1]  # what every job's config is rebuilt with
    parsed = OverridesParser.create().parse_overrides([appended])[0]
    assert parsed.key_or_group == "hydra.job.config.override_dirname.exclude_keys"
    assert parsed.value() == excluded
    job = [
        "experiment=aug_ablation",
        "trainer.epochs=3",
        "lr=1e-2",
        "aug=strong",
        "seed=1",
        "name=a",
    ]
    dirname = get_overrides_dirname(
        OverridesParser.create().parse_overrides(job), excluded, item_sep=",", kv_sep="="
    )
    assert job_dir_resolver(4, dirname) == "4_aug=strong,lr=1e-2,seed=1"
    assert job_dir_resolver(0, "") == "0"
    assert job_dir_resolver(1, "dataset.root=/data/a") == "1_dataset.root=_data_a"
    trial = "optimizer.lr=0.0022881136684755237,loss.weights.ce=1.2055267521432877,seed=0.5"
    assert job_dir_resolver(2, trial) == "2_optimizer.lr=0.002288,loss.weights.ce=1.206,seed=0.5"
