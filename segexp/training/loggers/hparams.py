"""HParams: one row per run, with the settings that tell runs apart and a few final metrics.

Every run writes its session (its settings and final metrics). What TensorBoard shows as the
table's columns comes from one experiment record per ``--logdir``: a single run writes its own
(its choices and overrides; the short metric list); in a sweep, the jobs write none and the
sweep folder gets one listing only the keys that differ between jobs, each with the values it
takes (``write_experiment``, called with the sweep report). Without a record TensorBoard makes
a column of every setting and every scalar of every run.
"""

import math
import re
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from tensorboard.plugins.hparams import plugin_data_pb2
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from segexp.training.loggers.tensorboard import SORTED_LAST, tensorboard_tag

FINAL_METRICS = ("mIoU", "mDice", "pixel_acc", "mean_class_acc", "mBF1")
# The HParams table's metric columns (the tags TensorBoard holds them under).
TABLE_METRIC_TAGS = [
    tensorboard_tag(f"final/{split}_{key}")
    for split in ("val", "test")
    for key in ("mIoU", "mDice", "pixel_acc")
]
EXPERIMENT_FILE_SUFFIX = ".hparams"
# MLflow's rule for names (TensorBoard and CSV take any): anything else becomes "_".
_REFUSED_IN_NAMES = re.compile(r"[^A-Za-z0-9_\-. :/]")


def final_metrics(splits: dict[str, dict[str, Any]]) -> dict[str, float]:
    """``final/<split>_<metric>``; NaN where a run resumed from an older checkpoint lacks one."""
    return {
        f"final/{split}_{key}": float(result.get(key, math.nan))
        for split, result in splits.items()
        for key in FINAL_METRICS
    }


def override_value(override: str) -> Any:
    """An override's value as HParams holds it: number, bool, text (lists: as typed) or None
    (null: TensorBoard leaves the cell empty rather than showing "None")."""
    parsed = OverridesParser.create().parse_overrides([override])[0]
    value = parsed.value()
    if parsed.key_or_group == "seed":
        return str(value)  # a seed names a replicate, not a quantity: 0, 1, 2, not 1.0000
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return override.partition("=")[2]


def hparam_name(key: str) -> str:
    """The name every logger (TensorBoard HParams, CSV, MLflow) and the sweep's HParams record
    give a Hydra choice or overridden key. A group placed elsewhere in the config
    (``postprocess@test.postprocess``, Hydra's name for the choice) is named where its choice
    lands, the key its options are set under (``test.postprocess``): MLflow refuses ``@``, and
    the same setting must have one name in every logger."""
    group, _, package = key.partition("@")
    name = group if package in ("", "_global_") else package.removeprefix("_global_.")
    return _REFUSED_IN_NAMES.sub("_", name)


def hparam_values(cfg: DictConfig, run_info: dict[str, Any]) -> dict[str, Any]:
    """Group choices (``model: unet``), then every overridden key with its value, each under
    its ``hparam_name``."""
    values: dict[str, Any] = {"seed": str(int(cfg.seed))}  # as override_value gives it
    for group, choice in run_info.get("choices", {}).items():
        if choice is not None:  # an unused optional group (hparams_search) is no setting
            values[hparam_name(str(group))] = str(choice)
    for override in run_info.get("overrides", []):
        key = override.partition("=")[0].lstrip("+~")
        if key.startswith("hydra") or hparam_name(key) in values:
            continue
        value = OmegaConf.select(cfg, key, default=None)
        scalar = isinstance(value, bool | int | float | str)
        values[hparam_name(key)] = value if scalar else override_value(override)  # None: null
    return values


def experiment_summary(domains: dict[str, list[Any]], metric_tags: list[str]):
    """The experiment record: these hparams (each with its values) and metrics as columns."""
    domains = {key: _same_type(values) for key, values in domains.items()}
    domains = {key: values for key, values in domains.items() if values}
    example = {key: values[0] for key, values in domains.items()}
    summary, _, _ = hparams(example, dict.fromkeys(metric_tags, 0.0), domains)
    data = plugin_data_pb2.HParamsPluginData.FromString(
        summary.value[0].metadata.plugin_data.content
    )
    for info in data.experiment.metric_infos:  # "val mIoU" rather than the tag
        info.display_name = info.name.tag.removeprefix(SORTED_LAST).replace("_", " ", 1)
    summary.value[0].metadata.plugin_data.content = data.SerializeToString()
    return summary


def _same_type(values: list[Any]) -> list[Any]:
    """TensorBoard holds every number as float64; a key with mixed kinds becomes text; null
    (an empty cell) is no value of the domain."""
    unique = [value for value in dict.fromkeys(values) if value is not None]
    if all(isinstance(v, bool) for v in unique):
        return unique
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in unique):
        return sorted({float(v) for v in unique})
    return sorted({str(v) for v in unique})


def write_experiment(log_dir: Path, domains: dict[str, list[Any]]) -> None:
    """The experiment record of a folder of runs (a sweep), replacing an earlier one."""
    for old in log_dir.glob(f"events.out.tfevents.*{EXPERIMENT_FILE_SUFFIX}"):
        old.unlink()
    writer = SummaryWriter(str(log_dir), filename_suffix=EXPERIMENT_FILE_SUFFIX)
    writer._get_file_writer().add_summary(experiment_summary(domains, TABLE_METRIC_TAGS))
    writer.close()


def log_tensorboard_hparams(
    writer: SummaryWriter, values: dict[str, Any], metrics: dict[str, float], *, record: bool
) -> None:
    """The run's session, its final scalars, and (``record``) its own experiment record."""
    tags = {tensorboard_tag(key): value for key, value in metrics.items()}
    _, session_start, session_end = hparams(values, tags)
    file_writer = writer._get_file_writer()
    if record:
        file_writer.add_summary(
            experiment_summary({k: [v] for k, v in values.items()}, TABLE_METRIC_TAGS)
        )
    file_writer.add_summary(session_start)
    file_writer.add_summary(session_end)
    for tag, value in tags.items():
        writer.add_scalar(tag, value)
