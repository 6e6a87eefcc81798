"""`segexp-plan dataset=... budget=15min out=myconf` (python -m segexp.plan): read the dataset as
the audit does, probe this machine, and write a preset of the settings for a first strong run
within the budget, with the measured number behind each choice (docs/new-dataset.md)."""

import logging
import os
import platform
from pathlib import Path

import torch
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from segexp.config.checks import validate
from segexp.config.cli import hydra_app, run_tool
from segexp.config.paths import config_exists
from segexp.config.trainer import duration_seconds, trainer_settings
from segexp.errors import SegexpError
from segexp.planning.fingerprint import fingerprint
from segexp.planning.measure import Meter
from segexp.planning.preset import check_preset, dataset_preset, write_preset
from segexp.planning.rules import Choice, plan
from segexp.runtime import interrupt
from segexp.runtime.threads import set_threads

log = logging.getLogger("segexp")
PLAN_KEYS = ("budget", "out", "preset", "overwrite")


def table(choices: list[Choice]) -> str:
    """``choice | value | why``, the values as they would be typed on the command line."""
    width = max(len(c.name) for c in choices)
    rows = [f"{'choice':<{width}} | value | why", "-" * 100]
    for c in choices:
        value = " ".join(f"{k}={_typed(v)}" for k, v in c.keys.items())
        rows.append(f"{c.name:<{width}} | {value} | {c.why}")
    return "\n".join(rows)


def _typed(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ",".join(_typed(v) for v in value) + "]"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _base(out: Path) -> tuple[str, DictConfig] | None:
    """The dataset config the plan started from, when the preset's folder reaches it (one of
    segexp's own or one in ``out``), composed alone: the preset then holds only what differs."""
    runtime = HydraConfig.get().runtime
    base = runtime.choices.get("dataset")
    searched = {source.path for source in runtime.config_sources if source.schema == "file"}
    in_out = (out / "dataset" / f"{base}.yaml").is_file() and str(out.resolve()) in searched
    if not (config_exists(f"dataset/{base}") or in_out):
        return None
    return base, compose(config_name="config", overrides=[f"dataset={base}"]).dataset


def run_plan(cfg: DictConfig) -> list[Choice]:
    seconds = duration_seconds(cfg.budget)
    if seconds is None:
        raise SegexpError(f"budget={cfg.budget}: give a duration, e.g. budget=15min or 900")
    name = str(cfg.preset or f"{cfg.dataset.name}_plan")
    paths = check_preset(Path(cfg.out), name, bool(cfg.overwrite))
    validate(cfg)
    # The probes run with the threads a run started now would take (num_threads=auto: fewer on
    # a busy machine, where two threads can make a step many times slower).
    set_threads(trainer_settings(cfg.trainer).num_threads)
    found, cfg = fingerprint(cfg)
    given = [o for o in HydraConfig.get().overrides.task if o.split("=")[0] not in PLAN_KEYS]

    def meter_for(model_keys: dict) -> Meter:
        model = [f"{k}={v}" for k, v in model_keys.items()]

        def config_for(crop: tuple[int, int]) -> DictConfig:
            size = f"dataset.image_size=[{crop[0]},{crop[1]}]"
            return compose(config_name="config", overrides=[*given, *model, size])

        return Meter(config_for)

    choices = plan(cfg, found, seconds, meter_for, str(cfg.budget))
    machine = f"{platform.machine()}, {torch.get_num_threads()} CPU threads"
    if torch.cuda.is_available():
        machine = torch.cuda.get_device_name()
    load = os.getloadavg()[0]
    machine += f", load average {load:.1f}"
    header = f"dataset {cfg.dataset.name}, budget {cfg.budget}, on {machine}"
    dataset = dataset_preset(cfg.dataset, name, choices, _base(Path(cfg.out)))
    write_preset(paths, name, dataset, choices, header)
    log.info("plan for %s\n%s", header, table(choices))
    if load > (os.cpu_count() or 1):
        log.warning(
            "measured under load (load average %.1f on %d cores): the sizes fit this machine as "
            "busy as it is now; plan again when it is quieter for a plan that fits it then",
            load, os.cpu_count() or 1,
        )  # fmt: skip
    log.info(
        "written: %s, %s\nrun it: python -m segexp --config-dir %s +experiment=%s",
        paths["dataset"], paths["experiment"], Path(cfg.out), name,
    )  # fmt: skip
    return choices


@hydra_app("plan")
def main(cfg: DictConfig) -> None:
    run_tool(interrupt.interruptible(run_plan), cfg)


if __name__ == "__main__":
    main()
