"""Assembly, once: everything a run is made of, built from its config.

``build_experiment`` is what ``fit``, the run tools (``load_run``: evaluate, predict, export) and
``benchmarks/`` call, so a model is never built, moved or wrapped in two different ways.
"""

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from segexp.config.build import build, class_names
from segexp.config.legacy import upgrade
from segexp.config.trainer import TrainerSettings, trainer_settings
from segexp.data.device_aug import DevicePhotometric
from segexp.data.loaders import Splits, build_splits, fixed_batches
from segexp.errors import SegexpError
from segexp.losses.auxiliary import WithAuxiliary
from segexp.metrics.split import SplitMetrics
from segexp.models.wrapper import SegmentationModel
from segexp.runtime import distributed
from segexp.runtime.allocator import retain_freed_memory
from segexp.runtime.device import Device, make_device, seed_everything
from segexp.runtime.threads import set_threads
from segexp.storage.checkpoint import load_checkpoint
from segexp.training.early_stopping import EarlyStopping, build_early_stopping
from segexp.training.ema import WeightAverage, build_ema
from segexp.training.optim import build_optimizer, maybe_compile
from segexp.training.schedulers import warmup_constant


@dataclass
class Experiment:
    cfg: DictConfig
    trainer: TrainerSettings  # cfg.trainer as the checked object the loop reads
    dev: Device
    model: SegmentationModel  # the plain module: weights, checkpoints, inference
    train_model: nn.Module  # what a training step calls (DDP-wrapped and/or compiled)
    eval_model: nn.Module  # what evaluation calls (compiled, never DDP: see distributed.py)
    loss_fn: nn.Module
    metrics: SplitMetrics  # the confusion matrix and boundary F1 the evaluation loop fills
    class_names: list[str]
    splits: Splits | None = None
    optimizer: torch.optim.Optimizer | None = None
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    scaler: torch.amp.GradScaler | None = None
    ema: WeightAverage | None = None
    early_stopping: EarlyStopping | None = None
    device_aug: DevicePhotometric | None = None  # aug.device: photometric, on the device

    @property
    def scored_model(self) -> nn.Module:
        """What validation scores: the averaged weights when trainer.ema is on."""
        return self.eval_model if self.ema is None else self.ema.module


def build_model(cfg: DictConfig, dev: Device) -> SegmentationModel:
    model = build(cfg.model)
    if not isinstance(model, SegmentationModel):
        raise SegexpError(
            f"model._target_={cfg.model.get('_target_')} must build "
            "segexp.models.wrapper.SegmentationModel, with the architecture under model.net"
        )
    model = model.to(dev.device)
    return model.to(memory_format=torch.channels_last) if dev.channels_last else model


def build_experiment(
    cfg: DictConfig, *, training: bool = True, device: str | None = None, parallel_jobs: int = 1
) -> Experiment:
    """Model, loss and metrics on the trainer's device (or ``device``); with ``training``, first
    this process's threads (``parallel_jobs``: runs a sweep launcher executes beside it), seeds
    and anomaly detection, then also the data, the optimizer, the schedule and the AMP scaler,
    and the model prepared for the process group and torch.compile."""
    trainer = trainer_settings(cfg.trainer)
    if device is not None:
        trainer = dataclasses.replace(trainer, device=device)
    dev = make_device(trainer, exclusive=training)  # a training run holds its GPU alone
    if training:
        set_threads(trainer.num_threads, parallel_jobs)
        retain_freed_memory()
        seed_everything(int(cfg.seed), trainer.deterministic, trainer.cudnn_benchmark)
        torch.autograd.set_detect_anomaly(trainer.detect_anomaly)
    model = build_model(cfg, dev)
    loss_fn = WithAuxiliary(build(cfg.loss), model.aux_loss_weight).to(dev.device)
    tolerance = OmegaConf.select(cfg, "metrics.boundary_tolerance", default=2)
    num_classes, ignore_index = int(cfg.dataset.num_classes), int(cfg.dataset.ignore_index)
    metrics = SplitMetrics(num_classes, ignore_index, tolerance, device=dev.device)
    names = class_names(cfg.dataset)
    if not training:
        model.eval()
        return Experiment(cfg, trainer, dev, model, model, model, loss_fn, metrics, names)
    splits = build_data(cfg, trainer, pin_memory=dev.device.type == "cuda")
    model, train_model = distributed.prepare_model(model, trainer.sync_bn)
    train_model = maybe_compile(train_model, trainer.compile)
    eval_model = train_model if not distributed.is_initialized() else model
    optimizer = build_optimizer(cfg.optimizer, model, trainer.fused_optimizer)
    steps = optimizer_steps(trainer, splits.train_batches)
    scheduler = build_scheduler(cfg, trainer, optimizer, steps)
    scaler = torch.amp.GradScaler(dev.device.type, enabled=dev.amp_dtype == torch.float16)
    device_aug = build(cfg.aug.device) if cfg.aug.get("device") is not None else None
    if device_aug is not None:
        device_aug.seed(int(cfg.seed) + distributed.rank(), dev.device)
    return Experiment(
        cfg, trainer, dev, model, train_model, eval_model, loss_fn, metrics, names,
        splits, optimizer, scheduler, scaler,
        build_ema(trainer.ema, model), build_early_stopping(trainer.early_stopping), device_aug,
    )  # fmt: skip


def build_data(cfg: DictConfig, trainer: TrainerSettings, pin_memory: bool = False) -> Splits:
    """The splits as the trainer uses them: the same few batches under overfit_batches, else
    every split with at most limit_train_batches / limit_val_batches per pass."""
    if trainer.overfit_batches:
        return fixed_batches(cfg, trainer.overfit_batches, pin_memory)
    splits = build_splits(cfg, pin_memory)
    return splits.limited(trainer.limit_train_batches, trainer.limit_val_batches)


def optimizer_steps(trainer: TrainerSettings, train_batches: int) -> int:
    """The run's optimizer steps as its config bounds them (a step never spans epochs): what the
    schedule is sized by until the run's length is planned (training/budget.py)."""
    per_epoch = math.ceil(train_batches / trainer.accumulate_grad_batches)
    bounds = [] if trainer.epochs is None else [trainer.epochs * per_epoch]
    if trainer.plan is not None:
        bounds.append(trainer.plan[0][1])
    return min(bounds) if bounds else per_epoch


def build_scheduler(
    cfg: DictConfig, trainer: TrainerSettings, optimizer: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The configured schedule; under trainer.overfit_batches the optimizer's own lr, constant
    and without warm-up: a schedule sized for full runs starves a sanity check of a few steps."""
    if trainer.overfit_batches:
        return warmup_constant(optimizer, total_steps)
    return build(cfg.scheduler)(optimizer=optimizer, total_steps=total_steps)


@dataclass
class LoadedRun:
    run_dir: Path
    checkpoint: Path
    experiment: Experiment  # its model holds the checkpoint's weights, in eval mode

    @property
    def cfg(self) -> DictConfig:
        return self.experiment.cfg

    @property
    def model(self) -> SegmentationModel:
        return self.experiment.model

    @property
    def dev(self) -> Device:
        return self.experiment.dev


def checkpoint_path(run_dir: Path, checkpoint: str) -> Path:
    """``best`` / ``last`` name a file in run_dir/checkpoints; anything else is a path."""
    if checkpoint in {"best", "last"}:
        return run_dir / "checkpoints" / f"{checkpoint}.pt"
    path = Path(checkpoint)
    return path if path.is_absolute() or path.exists() else run_dir / path


def stored_config(state: dict) -> DictConfig:
    """The run's resolved config from a checkpoint, in the current layout (config/legacy.py),
    set to rebuild the trained model: no pretrained file is read again (the run's own precision
    and memory format reproduce its numbers)."""
    cfg = OmegaConf.create(upgrade(state["config"]))
    net = cfg.model.net
    for key in ("weights", "encoder_weights"):
        if key in net:
            net[key] = None
    return cfg


def load_run(run: str | Path, checkpoint: str = "best", device: str = "auto") -> LoadedRun:
    """A finished (or interrupted) run folder's model and config, ready for inference."""
    run_dir = Path(run)
    if not run_dir.is_dir():
        raise SegexpError(f"run={run}: no such folder; give a run folder under outputs/")
    path = checkpoint_path(run_dir, str(checkpoint))
    if not path.is_file():
        raise SegexpError(
            f"checkpoint {path} does not exist: did the run finish? "
            "Use checkpoint=last or checkpoint=<file.pt>"
        )
    state = load_checkpoint(path)
    if "config" not in state or "model" not in state:
        raise SegexpError(f"{path} is not a segexp checkpoint (no 'config' or 'model' entry)")
    experiment = build_experiment(stored_config(state), training=False, device=device)
    experiment.model.load_state_dict(state["model"])
    return LoadedRun(run_dir, path, experiment)
