"""`python -m segexp`: the Hydra entry point; turns a run's outcome into summary.json, exit code."""

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from segexp.errors import SegexpError
from segexp.resume import completed_run, config_hash
from segexp.summary import write_json
from segexp.train import fit

log = logging.getLogger("segexp")
# The config tree lives beside the package (conf/ at the repository's top level); an absolute
# path, because `python -m` would otherwise make Hydra look for a Python package named conf.
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def _run_info() -> dict:
    hydra_cfg = HydraConfig.get()
    choices = {k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra")}
    return {"overrides": list(hydra_cfg.overrides.task), "choices": choices}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Returns the best val mIoU, which Hydra's sweepers maximise."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    info = {**_run_info(), "config_hash": config_hash(cfg)}
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    if multirun:  # resume: keep a job that already completed with this config
        try:
            done = completed_run(run_dir, info["config_hash"])
        except SegexpError as err:
            log.error("%s", err)
            return None
        if done is not None:
            log.info("skipped, already completed with this config: %s", run_dir)
            return done["val"]["mIoU"]
    try:
        summary = fit(cfg, run_dir, info)
    except SegexpError as err:
        write_json({"status": "failed", "reason": str(err), **info}, run_dir / "summary.json")
        log.error("%s", err)
        if multirun:
            return None
        sys.exit(1)
    except KeyboardInterrupt:
        write_json(
            {"status": "interrupted", "reason": "KeyboardInterrupt", **info},
            run_dir / "summary.json",
        )
        raise
    except Exception as err:
        write_json(
            {"status": "failed", "reason": f"{type(err).__name__}: {err}", **info},
            run_dir / "summary.json",
        )
        if multirun:  # one failing job (exception, CUDA out of memory) must not end the sweep
            log.exception("job failed: %s", run_dir)
            return None
        raise
    log.info("run folder: %s", run_dir)
    log.info("tensorboard: tensorboard --logdir %s", run_dir)
    return summary["val"]["mIoU"]
