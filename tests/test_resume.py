"""Checkpoints and resume: atomic writes, exact resume after SIGKILL, SIGTERM, re-runs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from segexp.runtime import interrupt
from segexp.storage import checkpoint
from segexp.storage.checkpoint import load_checkpoint, save_checkpoint
from segexp.training.fit import fit
from segexp.training.resume import restore

from .conftest import REPO, TINY, compose_config, run_cli

# Three epochs of four steps; augmentation on, so its random streams must be restored too. The
# learning rate makes epoch 3 the best one, so the final metrics come from after the kill.
EXACT = [*TINY, "trainer.epochs=3", "trainer.deterministic=true", "aug=light", "optimizer.lr=0.03"]
EXACT += ["loss=ce"]

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


def test_interrupted_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)

    def torn_save(state, f):
        f.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt  # a kill in the middle of writing

    monkeypatch.setattr(checkpoint.torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left
    # SIGKILL leaves no chance to clean up: the next run's restore removes the leftover.
    leftover = tmp_path / ".last.pt.x1y2.tmp"
    leftover.write_bytes(b"PK half")
    assert restore(tmp_path / "none.pt", None).epoch == 0
    assert not leftover.exists() and path.exists()


def test_sigterm_saves_and_prints_the_resume_command(tmp_path):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "segexp", *TINY, "trainer.epochs=500", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    last = run_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 240
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=240)
    assert process.returncode == 143, output[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["reason"] == "SIGTERM"
    assert f"python -m segexp resume={run_dir}" in summary["resume"]
    assert f"python -m segexp resume={run_dir}" in output
    assert "Traceback" not in output
    assert 1 <= load_checkpoint(last)["epoch"] < 500


def test_second_ctrl_c_exits_at_once():
    before = signal.getsignal(signal.SIGINT)  # default, or ignored when started in the background
    with interrupt.stop_on_signals():
        os.kill(os.getpid(), signal.SIGINT)
        assert interrupt.stop_requested()
        with pytest.raises(interrupt.RunInterrupted):
            interrupt.check()
        assert list(interrupt.until_stopped([1, 2, 3])) == []
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert interrupt.stop_requested() == "SIGINT"  # kept for reporting after the block
    assert signal.getsignal(signal.SIGINT) is before  # the handler in place before the run
    interrupt.clear()  # the next test's fit() in this process must not see it
