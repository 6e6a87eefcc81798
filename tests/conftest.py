"""Fixtures and helpers shared by the test folders: tiny configs and runs, command lines, ports."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

# The tests' models are tiny: one thread is faster than two that synchronise every operation, and
# it keeps the suite's speed independent of what else runs on the machine. Set before torch is
# imported (by segexp below); subprocesses inherit it. (trainer.num_threads=auto honours it.)
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch
import torch.distributed as dist
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from segexp.config.build import build
from segexp.config.paths import CONFIG_DIR
from segexp.config.trainer import TrainerSettings
from segexp.data.synthetic import SyntheticSegmentation
from segexp.runtime.device import Device
from segexp.storage.checkpoint import load_checkpoint, save_checkpoint
from segexp.training.experiment import Experiment
from segexp.training.fit import fit
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


def cli_env() -> dict[str, str]:
    """This checkout's segexp (and its Hydra plugin), whatever an installed copy elsewhere says."""
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


def run_cli(*args: str, cwd: Path, module: str = "segexp") -> subprocess.CompletedProcess:
    """`python -m segexp ARGS` (or another entry point) in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=cli_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def start_cli(*args: str, cwd: Path, log: Path) -> subprocess.Popen:
    """`python -m segexp ARGS` started and not waited for (processes side by side), its output
    going to ``log``."""
    with log.open("w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "segexp", *args], env=cli_env(), cwd=cwd, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip


def in_a_job(
    sweep_dir: Path, process: subprocess.Popen | None = None, timeout: float = 200
) -> None:
    """Wait until ``process`` (a sweep run by the basic launcher, its jobs in its own process;
    None: this process) runs a job of ``sweep_dir``: the job folder's lock names its PID."""
    pid = os.getpid() if process is None else process.pid
    deadline = time.monotonic() + timeout
    while not any(f"PID {pid} " in lock.read_text() for lock in sweep_dir.glob("*/.segexp.lock")):
        alive = process is None or process.poll() is None
        assert alive and time.monotonic() < deadline, "no job started"
        time.sleep(0.05)


def segexp_cli(*args: str) -> int:
    """``python -m segexp ARGS`` in this process (the same path as the console command)."""
    from segexp.train import cli

    argv = sys.argv
    sys.argv = ["segexp", *args]
    try:
        cli()
        return 0
    except SystemExit as err:
        return int(err.code or 0)
    finally:
        sys.argv = argv


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


# Two processes on the CPU (torchrun, or torch.multiprocessing with the gloo backend).
# 9 validation samples: 5 on rank 0, 4 on rank 1, so padding by repetition would show.
DISTRIBUTED_RUN = [*TINY, "dataset.val.num_samples=9"]
needs_gloo = pytest.mark.skipif(not dist.is_gloo_available(), reason="torch built without gloo")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Runs for the tools (evaluate, predict, export): trained once per session, read by the tests of
# several tools.

# The evaluation transform of RESIZED halves the 32 x 32 scenes: the model sees 16 x 16.
HALF = "aug.eval={_target_: albumentations.Resize, height: 16, width: 16}"


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("run")
    fit(compose_config([*TINY, "trainer.epochs=1", "logger=none"]), path)
    return path


@pytest.fixture(scope="session")
def resized_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("resized")
    fit(compose_config([*TINY, "trainer.epochs=1", "logger=none", HALF]), path)
    return path


def write_split(run, split: str, root) -> list[str]:
    """The run's synthetic ``split`` written out as images/ and masks/ PNGs."""
    dataset = run.cfg.dataset
    data = SyntheticSegmentation(split, dataset[split].num_samples, dataset.image_size)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(len(data)):
        image, mask = data.load(i)
        Image.fromarray(image).save(root / "images" / f"{data.names[i]}.png")
        Image.fromarray(mask).save(root / "masks" / f"{data.names[i]}.png")
    return data.names


def untrained_run(folder, overrides: list[str]):
    """A run folder whose best.pt holds a freshly initialised model: enough for export."""
    cfg = compose_config(overrides)
    torch.manual_seed(0)
    model = build(cfg.model)
    model.eval()
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        model.train()(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8))
    state = {"model": model.state_dict(), "config": OmegaConf.to_container(cfg, resolve=True)}
    save_checkpoint(state, folder / "checkpoints" / "best.pt")
    return folder


def speckled_run(folder):
    """An untrained model without its head's bias: speckled predictions of several classes,
    which multi-scale TTA and post-processing visibly change."""
    run_dir = untrained_run(folder, [*TINY, "logger=none"])
    state = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    state["model"]["net.head.bias"].zero_()
    state["model"]["net.head.weight"].mul_(10)
    save_checkpoint(state, run_dir / "checkpoints" / "best.pt")
    return run_dir
