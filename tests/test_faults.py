"""Bad input and faults: one clear line naming the key and the fix, and no code from files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from segexp.config.checks import validate
from segexp.data.loaders import build_splits
from segexp.errors import SegexpError
from segexp.models.wrapper import SegmentationModel
from segexp.storage.checkpoint import load_checkpoint
from segexp.training.epoch import train_one_epoch
from segexp.training.faults import explain
from segexp.training.fit import fit
from segexp.training.loggers import NullWriter
from segexp.training.resume import resume_config

from .conftest import REPO, TINY, TINY_RUN, compose_config, experiment_from_parts, run_cli


class _Payload:
    """Unpickling this runs open(marker, "w"): what a hostile checkpoint could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_checkpoint_that_would_run_code_is_refused_and_nothing_runs(tiny_config, tmp_path):
    marker = tmp_path / "pwned"
    hostile = tmp_path / "checkpoints" / "last.pt"
    hostile.parent.mkdir()
    torch.save({"model": {"w": torch.zeros(1)}, "extra": _Payload(marker)}, hostile)

    with pytest.raises(SegexpError, match=r"refusing to load .*last\.pt") as err:
        load_checkpoint(hostile)
    assert "\n" not in str(err.value)
    with pytest.raises(SegexpError, match="refusing to load"):
        fit(tiny_config(), tmp_path)  # the run folder's last.pt is read to resume
    assert not marker.exists()

    torch.load(hostile, weights_only=False)  # the control: an unsafe load does run the payload
    assert marker.exists()


def test_truncated_checkpoint_is_named(tmp_path):
    path = tmp_path / "best.pt"
    torch.save({"w": torch.ones(100)}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(SegexpError, match=r"best\.pt.*truncated"):
        load_checkpoint(path)


def _folder_dataset(root: Path, mask_value: int = 255) -> Path:
    for split in ("train", "val", "test"):
        for sub in ("images", "masks"):
            (root / split / sub).mkdir(parents=True)
        for stem in ("a", "b"):
            image = np.zeros((8, 8), np.uint8)
            Image.fromarray(image).save(root / split / "images" / f"{stem}.png")
            mask = np.zeros((8, 8), np.uint8)
            mask[:4] = mask_value
            Image.fromarray(mask).save(root / split / "masks" / f"{stem}.png")
    return root


BAD_CONFIGS = {
    "missing root": (["dataset=folder"], r"dataset\.root is not set: add dataset\.root="),
    "root not a folder": (["dataset=folder", "dataset.root=/no/such/dir"], r"not a folder"),
    "ignore_index in range": (
        ["dataset.ignore_index=1"],
        r"ignore_index=1 is not allowed: .*not a class index",
    ),
    "model channels": (
        ["model.net.in_channels=1"],
        r"model\.net\.in_channels=1 but .*in_channels=3",
    ),
    "unknown encoder": (["+model.net.encoder_name=resnt34"], r"encoder_name=resnt34 .*resnet34"),
    "unknown precision": (["trainer.precision=fp8"], r"trainer\.precision='fp8'"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_is_one_line_naming_the_key(case):
    overrides, message = BAD_CONFIGS[case]
    with pytest.raises(SegexpError, match=message) as err:
        validate(compose_config([*TINY_RUN, *overrides]))
    assert "\n" not in str(err.value)


def test_mask_values_beyond_num_classes_are_named(tmp_path):
    root = _folder_dataset(tmp_path / "data", mask_value=3)
    cfg = compose_config([*TINY_RUN, "dataset=folder", f"dataset.root={root}", "logger=none"])
    with pytest.raises(SegexpError) as err:
        fit(cfg, tmp_path / "run")  # fails while the datasets are built, before any training
    message = str(err.value)
    assert "mask values [3] are >= num_classes=2" in message and "a.png" in message
    assert "set dataset.num_classes=4" in message and "\n" not in message
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_batch_larger_than_the_train_split(tiny_config):
    with pytest.raises(SegexpError, match=r"batch_size=4 is larger than the train split \(3"):
        build_splits(tiny_config("dataset.train.num_samples=3"))


def test_resume_folder_without_last_pt(tmp_path):
    cfg = compose_config([*TINY, f"resume={tmp_path}"])
    with pytest.raises(SegexpError, match=r"resume=.*checkpoints/last\.pt does not exist"):
        resume_config(cfg, {"overrides": [f"resume={tmp_path}"], "choices": {}})


def test_cli_bad_resume_writes_nothing_into_the_named_folder(tmp_path):
    missing = tmp_path / "typo"
    result = run_cli(f"resume={missing}", "hydra.run.dir=unused", cwd=tmp_path)
    assert result.returncode == 1
    console = result.stdout + result.stderr
    assert "Traceback" not in console
    errors = [line for line in console.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "checkpoints/last.pt does not exist" in errors[0]
    assert not missing.exists()


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
