"""What a run logs: the writers (``logger`` config group, a list), per-split metrics, HParams.

HParams: each run's config choices, overridden values and final metrics, so that every job
folder of a sweep becomes one row of the HPARAMS tab of ``tensorboard --logdir <sweep folder>``.
Only the session records are written (no experiment record), so TensorBoard builds the table's
columns from all runs together: a sweep whose jobs override different keys still shows every key.
"""

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard.summary import hparams

from segexp.config.build import build
from segexp.runtime import distributed
from segexp.training.loggers.fanout import Writers

FINAL_METRICS = ("mIoU", "mDice", "pixel_acc", "mean_class_acc", "mBF1")


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
        return Writers([])
    purge = {} if resumed_at_step is None else {"purge_step": resumed_at_step + 1}
    # A run saved before loggers were a list holds one writer node (resume=<old run>).
    nodes = [node] if "_target_" in node else [child for child in node.values() if child]
    return Writers([build(child, log_dir=str(run_dir), **purge) for child in nodes])


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


def hparam_values(cfg: DictConfig, run_info: dict[str, Any]) -> dict[str, Any]:
    """Group choices (``model: unet``), then every overridden key with its resolved value."""
    values: dict[str, Any] = {"seed": int(cfg.seed)}
    values.update({str(k): str(v) for k, v in run_info.get("choices", {}).items()})
    for override in run_info.get("overrides", []):
        key, _, raw = override.partition("=")
        key = key.lstrip("+~")
        if key.startswith("hydra") or key in values:
            continue
        value = OmegaConf.select(cfg, key, default=None)
        values[key] = value if isinstance(value, bool | int | float | str) else raw
    return values


def log_hparams(
    writers: Writers, cfg: DictConfig, run_info: dict[str, Any], splits: dict[str, dict[str, Any]]
) -> None:
    """The same hyperparameters and final metrics to every logger: TensorBoard as an hparams
    session and ``final/<split>_<metric>`` scalars, the others through their ``log_hparams``."""
    metrics = {
        # .get: a run resumed from a checkpoint older than a metric has no value for it
        f"final/{split}_{key}": float(result.get(key, float("nan")))
        for split, result in splits.items()
        for key in FINAL_METRICS
    }
    values = hparam_values(cfg, run_info)
    for writer in writers.writers:
        file_writer = getattr(writer, "_get_file_writer", lambda: None)()
        if file_writer is not None:  # a SummaryWriter
            _, session_start, session_end = hparams(values, metrics)
            file_writer.add_summary(session_start)
            file_writer.add_summary(session_end)
            for tag, value in metrics.items():
                writer.add_scalar(tag, value)
        elif hasattr(writer, "log_hparams"):
            writer.log_hparams(values, metrics)
    writers.flush()
