"""TensorBoard HParams: each run's config choices, overridden values and final metrics.

Every job folder of a sweep then becomes one row of the HPARAMS tab of
``tensorboard --logdir <sweep folder>``. Only the session records are written (no experiment
record), so TensorBoard builds the table's columns from all runs together: a sweep whose jobs
override different keys still shows every key.
"""

from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard.summary import hparams

FINAL_METRICS = ("mIoU", "mDice", "pixel_acc", "mean_class_acc")


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
    writer, cfg: DictConfig, run_info: dict[str, Any], splits: dict[str, dict[str, Any]]
) -> None:
    """Writes the hparams session and ``final/<split>_<metric>`` scalars into the run's events."""
    file_writer = getattr(writer, "_get_file_writer", lambda: None)()
    if file_writer is None:  # logger=none
        return
    metrics = {
        f"final/{split}_{key}": float(result[key])
        for split, result in splits.items()
        for key in FINAL_METRICS
    }
    _, session_start, session_end = hparams(hparam_values(cfg, run_info), metrics)
    file_writer.add_summary(session_start)
    file_writer.add_summary(session_end)
    for tag, value in metrics.items():
        writer.add_scalar(tag, value)
