"""What a run logs: the writers (``logger`` config group, a list), per-split metrics, HParams
(hparams.py: each job folder of a sweep is one row of ``tensorboard --logdir <sweep folder>``).
"""

from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from torch.utils.tensorboard import SummaryWriter

from segexp.config.build import build
from segexp.runtime import distributed
from segexp.training.loggers.fanout import Writers
from segexp.training.loggers.hparams import (
    FINAL_METRICS,
    final_metrics,
    hparam_values,
    log_tensorboard_hparams,
)


class NullWriter:
    """Accepts every SummaryWriter call and does nothing (``logger=none``, ranks > 0)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


def tensorboard_command(logdir: Path | str) -> str:
    """The command that opens a run or a sweep; TensorBoard keeps only 10 images per tag unless
    told, so a run's grid of every epoch needs ``--samples_per_plugin``."""
    return f"tensorboard --logdir {logdir} --samples_per_plugin images=1000"


def open_writer(node: DictConfig | None, run_dir: Path, resumed_at_step: int | None) -> Writers:
    """Every configured logger in the run folder, as one writer. Resumed: each drops what a killed
    session logged after its last checkpoint (``purge_step``)."""
    if not distributed.is_main() or not node:
        return Writers({})
    purge = {} if resumed_at_step is None else {"purge_step": resumed_at_step + 1}
    # A run saved before loggers were a list holds one writer node (resume=<old run>).
    if "_target_" in node:
        nodes = {str(node._target_).rpartition(".")[2]: node}
    else:
        nodes = {str(name): child for name, child in node.items() if child}
    return Writers(
        {name: build(child, log_dir=str(run_dir), **purge) for name, child in nodes.items()}
    )


def log_metrics(
    writer, split: str, metrics: dict[str, Any], loss: float | None, epoch: int
) -> None:
    if loss is not None:
        writer.add_scalar(f"{split}/loss", loss, epoch)
    for key in FINAL_METRICS:
        writer.add_scalar(f"{split}/{key}", metrics[key], epoch)
    for name, iou in metrics["per_class_iou"].items():
        writer.add_scalar(f"{split}_iou/{name}", iou, epoch)
    for name, bf1 in metrics.get("per_class_bf1", {}).items():
        writer.add_scalar(f"{split}_bf1/{name}", bf1, epoch)


def log_hparams(
    writers: Writers,
    cfg: DictConfig,
    run_info: dict[str, Any],
    splits: dict[str, dict[str, Any]],
    *,
    experiment_record: bool = True,
) -> None:
    """The same hyperparameters and final metrics to every logger: TensorBoard as an HParams
    session and ``~final/<split>_<metric>`` scalars (hparams.py), the others through their
    ``log_hparams``; the names are ``hparam_name``'s. ``experiment_record``: false for a
    sweep's jobs (the sweep writes one)."""
    metrics = final_metrics(splits)
    values = hparam_values(cfg, run_info)

    def log(writer) -> None:
        if isinstance(writer, SummaryWriter):
            log_tensorboard_hparams(writer, values, metrics, record=experiment_record)
        elif hasattr(writer, "log_hparams"):
            writer.log_hparams(values, metrics)

    writers.each("log_hparams", log)
    writers.flush()
