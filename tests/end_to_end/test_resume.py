"""Resume: exact after SIGKILL mid-epoch, a re-run continues, a new learning rate takes effect."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from segexp.storage.checkpoint import load_checkpoint
from segexp.training.experiment import load_run
from segexp.training.fit import fit
from tests.conftest import REPO, TINY, compose_config, run_cli, segexp_cli

pytestmark = pytest.mark.slow

# Three epochs of four steps; augmentation on, so its random streams must be restored too. The
# learning rate makes epoch 3 the best one, so the final metrics come from after the kill.
EXACT = [*TINY, "trainer.epochs=3", "trainer.deterministic=true", "aug=light", "optimizer.lr=0.03"]
EXACT += ["loss=ce", "trainer.time_budget=null"]  # a fixed length: no budget's probe steps either


# `python -m segexp ARGS`, killed with SIGKILL by itself right after optimizer step KILL_AT_STEP:
# an exact point in the middle of an epoch, whatever the machine's speed. TensorBoard events are
# flushed first, so the killed session leaves points past its checkpoint for the resume to purge.
KILL_AT_STEP = """
import gc, os, signal, sys
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.utils.tensorboard import SummaryWriter
steps = [0]
def hook(optimizer, args, kwargs):
    steps[0] += 1
    if steps[0] == int(os.environ["KILL_AT_STEP"]):
        for writer in [o for o in gc.get_objects() if isinstance(o, SummaryWriter)]:
            writer.flush()
        os.kill(os.getpid(), signal.SIGKILL)
register_optimizer_step_post_hook(hook)
from segexp.train import main
sys.argv = ["segexp", *sys.argv[1:]]
main()
"""


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def test_resume_after_sigkill_mid_epoch_equals_the_uninterrupted_run(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"

    env = {**os.environ, "PYTHONPATH": str(REPO), "KILL_AT_STEP": "7"}  # epoch 2, step 3 of 4
    result = subprocess.run(
        [sys.executable, "-c", KILL_AT_STEP, *EXACT, f"hydra.run.dir={killed}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert result.returncode == -signal.SIGKILL
    assert not (killed / "summary.json").exists()
    assert load_checkpoint(killed / "checkpoints" / "last.pt")["epoch"] == 1
    assert [s for s, _ in scalars(killed, "train/loss")] == [2, 4, 6]  # 6: after the checkpoint

    resumed = run_cli(f"resume={killed}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    fit(compose_config(EXACT), reference)  # the uninterrupted run, in this process
    want = json.loads((reference / "summary.json").read_text())
    got = json.loads((killed / "summary.json").read_text())
    assert got["status"] == "completed" and got["epochs"] == 3
    assert got["val"] == want["val"] and got["test"] == want["test"]
    assert got["best_epoch"] == want["best_epoch"] == 3
    assert got["overrides"] == EXACT and got["choices"]["aug"] == "light"  # the original run's
    # TensorBoard: the same steps, once each, with the same values (the killed session's steps
    # after its checkpoint are purged).
    for tag in ("train/loss", "train/lr", "val/loss", "val/mIoU", "train/epoch_loss"):
        assert scalars(killed, tag) == scalars(reference, tag), tag
    assert [s for s, _ in scalars(killed, "train/loss")] == [2, 4, 6, 8, 10, 12]
    # The resumed invocation did not overwrite the run's own record of how it was started.
    assert "resume=" not in (killed / ".hydra" / "overrides.yaml").read_text()


def test_rerun_in_the_same_folder_continues_and_keeps_every_n(tiny_config, tmp_path):
    fit(tiny_config("trainer.epochs=1", "trainer.keep_every=1"), tmp_path)
    first = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert first["epoch"] == 1 and first["global_step"] == 4
    expected_keys = {"model", "optimizer", "scheduler", "scaler", "epoch", "global_step"}
    assert expected_keys | {"best_miou", "rng", "config", "segexp_version"} <= set(first)
    assert set(first["rng"]) >= {"python", "numpy", "torch", "cuda", "loaders"}

    summary = fit(tiny_config("trainer.epochs=3", "trainer.keep_every=2"), tmp_path)
    assert summary["epochs"] == 3
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["global_step"] == 12
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["best.pt", "epoch_0001.pt", "epoch_0002.pt", "last.pt"]
    assert [s for s, _ in scalars(tmp_path, "train/loss")] == [2, 4, 6, 8, 10, 12]


def test_ema_and_accumulation_resume_exactly(tiny_config, tmp_path):
    ema = ["trainer.ema.decay=0.9", "trainer.ema.warmup=2", "trainer.epochs=3", "loss=ce"]
    ema += ["trainer.deterministic=true", "scheduler=constant"]  # epochs=2 then 3: same lr
    ema += ["trainer.accumulate_grad_batches=3"]  # 4 batches an epoch: steps of 3 and 1
    reference = fit(tiny_config(*ema), tmp_path / "reference")
    assert reference["ema"] is True
    best = load_checkpoint(tmp_path / "reference" / "checkpoints" / "best.pt")
    raw, averaged = best["ema"]["training_weights"], best["model"]
    assert any(not torch.equal(raw[k], averaged[k]) for k in raw)
    # The test split was scored with the averaged weights: evaluate them again from best.pt.
    run = load_run(tmp_path / "reference")
    assert torch.equal(next(run.model.parameters()), next(iter(averaged.values())))
    # Interrupted after 2 epochs, resumed to 3: the same averaged weights and metrics.
    fit(tiny_config(*ema, "trainer.epochs=2"), tmp_path / "resumed")
    resumed = fit(tiny_config(*ema), tmp_path / "resumed")
    as_text = lambda d: json.dumps(d, sort_keys=True)  # noqa: E731  (NaN equals NaN as text)
    assert as_text(resumed["val"]) == as_text(reference["val"])
    assert as_text(resumed["test"]) == as_text(reference["test"])
    last = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    want = load_checkpoint(tmp_path / "reference" / "checkpoints" / "last.pt")
    assert int(last["ema"]["n_averaged"]) == int(want["ema"]["n_averaged"]) == 6
    for key, value in want["model"].items():
        assert torch.equal(last["model"][key], value), key


def lr_points(run: Path) -> dict[int, float]:
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    return {e.step: e.value for e in events.Scalars("train/lr")}


def test_a_new_learning_rate_on_resume_reaches_the_optimizer(tmp_path, capsys):
    run = tmp_path / "run"
    base = [*TINY, "trainer.num_preview_images=0", "trainer.log_every_n_steps=1"]
    assert segexp_cli(*base, "trainer.epochs=1", f"hydra.run.dir={run}") == 0
    assert segexp_cli(f"resume={run}", "trainer.epochs=2", "optimizer.lr=0.3") == 0
    assert segexp_cli(f"resume={run}", "trainer.epochs=3") == 0
    lr = lr_points(run)
    # poly schedule, 2 warm-up steps, 4 steps per epoch: the factor at each step is the same
    # function of the step; only the base changed, from 3e-3 to 0.3 after epoch 1.
    reference = [*base, "trainer.epochs=2", "optimizer.lr=0.3"]
    other = tmp_path / "reference"
    capsys.readouterr()
    assert segexp_cli(*reference, f"hydra.run.dir={other}") == 0
    want = lr_points(other)
    for step in (5, 6, 7, 8):
        assert lr[step] == pytest.approx(want[step], rel=1e-6)  # epoch 2 at the new lr
    assert lr[4] < 3e-3 and lr[5] > 0.01
    summary = json.loads((run / "summary.json").read_text())
    assert "optimizer.lr=0.3" not in summary["overrides"]
    assert summary["resumes"] == [["trainer.epochs=2", "optimizer.lr=0.3"], ["trainer.epochs=3"]]
    assert summary["epochs"] == 3 and summary["status"] == "completed"
