"""Faults while training: no step, a non-finite loss, out of memory; one line with the fix."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from segexp.errors import SegexpError
from segexp.models.wrapper import SegmentationModel
from segexp.training import fit as fit_module
from segexp.training.epoch import TrainedEpoch, train_one_epoch
from segexp.training.faults import explain
from segexp.training.loggers import NullWriter
from tests.conftest import REPO, TINY, compose_config, experiment_from_parts, run_cli, segexp_cli
from tests.faults.conftest import QUICK, one_error


def test_a_run_that_trained_nothing_is_failed_not_completed(tmp_path, monkeypatch, capsys):
    def no_step(*args, global_step, **kwargs):  # a loop that got no batch
        return TrainedEpoch(float("nan"), 0, global_step)

    monkeypatch.setattr(fit_module, "train_one_epoch", no_step)
    run = tmp_path / "run"
    assert segexp_cli(*QUICK, f"hydra.run.dir={run}") == 1
    one_error(capsys, "epoch 1 ran no optimizer step")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "no optimizer step" in summary["reason"]


@pytest.mark.slow
def test_cli_non_finite_loss_fails_with_step_epoch_lr_and_a_fix(tmp_path):
    run_dir = tmp_path / "run"
    # A learning rate of 1e30 blows the weights up in the first step: the loss is NaN after it.
    result = run_cli(*TINY, "optimizer.lr=1e30", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 1
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["reason"].startswith("non-finite loss")
    for part in ("epoch 1", "step 2", "lr ", "lower optimizer.lr"):
        assert part in summary["reason"]
    assert "Traceback" not in result.stdout + result.stderr
    assert not (run_dir / "checkpoints").exists()


def _steps_with_an_overflow(scaler_enabled: bool) -> tuple[float, list[float]]:
    torch.manual_seed(0)
    model = SegmentationModel(torch.nn.Conv2d(1, 2, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    scaler = torch.amp.GradScaler("cpu", enabled=scaler_enabled)
    ce = torch.nn.CrossEntropyLoss()
    seen: list[float] = []

    def loss_fn(logits, masks):
        loss = ce(logits, masks)
        if len(seen) == 1:
            loss = loss * float("inf")  # the second step overflows, as fp16 sometimes does
        seen.append(loss.item())
        return loss

    batches = [(torch.randint(0, 255, (2, 1, 4, 4), dtype=torch.uint8), torch.zeros(2, 4, 4))] * 4
    exp = experiment_from_parts(
        model, loss_fn, optimizer, scheduler=scheduler, scaler=scaler,
        grad_clip_norm=None, log_every_n_steps=2,
    )  # fmt: skip
    trained = train_one_epoch(exp, batches, NullWriter(), epoch=1, global_step=0, num_batches=4)
    return trained.loss, seen


def test_steps_the_grad_scaler_skips_are_not_errors():
    mean, seen = _steps_with_an_overflow(scaler_enabled=True)
    finite = [v for v in seen if np.isfinite(v)]
    assert len(finite) == 3 and mean == pytest.approx(sum(finite) / 3, rel=1e-5)
    with pytest.raises(SegexpError, match=r"non-finite loss \((inf|nan)\) at epoch 1, step 2"):
        _steps_with_an_overflow(scaler_enabled=False)


def test_out_of_memory_message_names_batch_and_input_size():
    cfg = compose_config(TINY)
    err = explain(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), cfg)
    message = str(err)
    assert "dataset.batch_size=4" in message and "input size 32x32" in message
    assert "lower dataset.batch_size" in message and "\n" not in message
    assert explain(ValueError("something else"), cfg) is None


# The first job of a sweep runs out of CUDA memory (simulated: this machine may have no GPU).
OOM_IN_FIRST_JOB = """
import sys, torch, segexp.training.fit
real = segexp.training.fit.train_one_epoch
calls = []
def first_call_runs_out_of_memory(*args, **kwargs):
    calls.append(1)
    if len(calls) == 1:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
    return real(*args, **kwargs)
segexp.training.fit.train_one_epoch = first_call_runs_out_of_memory
from segexp.train import main
sys.argv = ["segexp", *sys.argv[1:]]
main()
"""


@pytest.mark.slow
def test_out_of_memory_fails_the_job_and_the_sweep_goes_on(tmp_path):
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, "-c", OOM_IN_FIRST_JOB, "--multirun", *TINY, "trainer=debug",
         "logger=none", "seed=0,1", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    # The sweep runs every job, then exits non-zero naming the failed one.
    assert result.returncode == 1, result.stderr[-2000:]
    summary_line = [line for line in result.stdout.splitlines() if "did not complete" in line]
    assert len(summary_line) == 1 and "0_seed=0: CUDA out of memory" in summary_line[0]
    first = json.loads((sweep / "0_seed=0" / "summary.json").read_text())
    second = json.loads((sweep / "1_seed=1" / "summary.json").read_text())
    assert first["status"] == "failed" and first["reason"].startswith("CUDA out of memory")
    assert "dataset.batch_size=4" in first["reason"]
    assert second["status"] == "completed"
    assert OmegaConf.load(sweep / "1_seed=1" / ".hydra" / "overrides.yaml")[-1] == "seed=1"
