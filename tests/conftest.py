import os
import subprocess
import sys
from pathlib import Path

# The tests' models are tiny: one thread is faster than two that synchronise every operation, and
# it keeps the suite's speed independent of what else runs on the machine. Set before torch is
# imported (by segexp below); subprocesses inherit it. (trainer.num_threads=auto honours it.)
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from segexp.config.paths import CONFIG_DIR
from segexp.config.trainer import TrainerSettings
from segexp.runtime.device import Device
from segexp.training.experiment import Experiment
from segexp.training.schedulers import warmup_constant

REPO = Path(__file__).resolve().parents[1]

# A model and a run small enough to take a few seconds on 2 CPU cores, with any dataset...
TINY_RUN = [
    "name=test",
    "model.net.depth=2",
    "model.net.base_channels=4",
    "dataset.image_size=[32,32]",
    "dataset.batch_size=4",
    "trainer.epochs=2",
    "trainer.log_every_n_steps=2",
    "scheduler.warmup_steps=2",
]
# ...and the synthetic dataset cut down to match.
TINY = [
    *TINY_RUN,
    "dataset.train.num_samples=16",
    "dataset.val.num_samples=8",
    "dataset.test.num_samples=8",
]


def compose_config(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@pytest.fixture
def tiny_config():
    return lambda *overrides: compose_config([*TINY, *overrides])


CPU = Device(torch.device("cpu"), None, channels_last=False)


def experiment_from_parts(
    model: torch.nn.Module,
    loss_fn,
    optimizer: torch.optim.Optimizer,
    *,
    train_model: torch.nn.Module | None = None,
    scheduler=None,
    scaler: torch.amp.GradScaler | None = None,
    **trainer,
) -> Experiment:
    """An Experiment of hand-made parts on the CPU, for tests of the loop itself; ``trainer``:
    TrainerSettings values (e.g. accumulate_grad_batches=2)."""
    return Experiment(
        OmegaConf.create({}),
        TrainerSettings(**trainer),
        CPU,
        model,
        train_model or model,
        train_model or model,
        loss_fn,
        metrics=None,
        class_names=[],
        optimizer=optimizer,
        scheduler=scheduler or warmup_constant(optimizer, 1),
        scaler=scaler or torch.amp.GradScaler("cpu", enabled=False),
    )


def run_cli(*args: str, cwd: Path, module: str = "segexp") -> subprocess.CompletedProcess:
    """`python -m segexp ARGS` (or another entry point) in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        # This checkout's segexp, whatever an installed copy elsewhere says.
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        },
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def tool_config(name: str, *overrides: str) -> DictConfig:
    """The config a tool (evaluate, predict, export, report, audit) composes from its command
    line, e.g. ``tool_config("evaluate", "run=...", "split=val")``."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


def evaluate_tool(*overrides: str) -> dict:
    from segexp.evaluate import evaluate_run

    return evaluate_run(tool_config("evaluate", *overrides))


def predict_tool(*overrides: str) -> list[Path]:
    from segexp.predict import predict

    return predict(tool_config("predict", *overrides))


def export_tool(*overrides: str) -> Path:
    from segexp.export import export_run

    return export_run(tool_config("export", *overrides))
