"""`segexp` / `python -m segexp`: train one run (or a sweep's jobs); turns a run's outcome into
summary.json and the exit code."""

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from segexp.config.cli import report_error
from segexp.config.paths import CONFIG_DIR
from segexp.errors import SegexpError
from segexp.runtime import distributed, interrupt
from segexp.runtime.threads import available_cores
from segexp.storage.checkpoint import last_checkpoint
from segexp.storage.files import write_json
from segexp.sweeps.resume import completed_run, config_hash
from segexp.training import resume
from segexp.training.faults import explain
from segexp.training.fit import fit

log = logging.getLogger("segexp")


def _run_info() -> dict:
    hydra_cfg = HydraConfig.get()
    choices = {k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra")}
    return {"overrides": list(hydra_cfg.overrides.task), "choices": choices}


def _fail(err: BaseException, cfg: DictConfig, info: dict, run_dir: Path) -> None:
    """summary.json "failed". A known problem is one line; an unknown one is re-raised, except
    in a sweep, where one failing job (exception, CUDA out of memory) must not end the others."""
    known = err if isinstance(err, SegexpError) else explain(err, cfg)
    reason = str(known) if known is not None else f"{type(err).__name__}: {err}"
    write_json({"status": "failed", "reason": reason, **info}, run_dir / "summary.json")
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    if known is None:
        if not multirun:
            raise err
        log.error("job failed: %s (%s)", run_dir, reason, exc_info=err)
        return
    report_error(known)
    if not multirun:
        sys.exit(1)


def _parallel_jobs() -> int:
    """Jobs a sweep launcher runs at once beside this one: joblib's n_jobs (-1: every core)."""
    hydra_cfg = HydraConfig.get()
    launcher = hydra_cfg.get("launcher") or {}
    if hydra_cfg.mode != RunMode.MULTIRUN or "joblib" not in str(launcher.get("_target_", "")):
        return 1
    n_jobs = int(launcher.get("n_jobs", -1) or 1)
    return available_cores() if n_jobs < 0 else n_jobs


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Returns the best val mIoU, which Hydra's sweepers maximise."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    info = {**_run_info(), "config_hash": config_hash(cfg)}
    if HydraConfig.get().mode == RunMode.MULTIRUN:  # resume: keep a job completed with this config
        try:
            done = completed_run(run_dir, info["config_hash"])
        except SegexpError as err:
            report_error(err)
            return None
        if done is not None:
            log.info("skipped, already completed with this config: %s", run_dir)
            return done["val"]["mIoU"]
    distributed.setup()  # under torchrun; a no-op otherwise
    if not distributed.is_main():  # its run_dir is a scratch folder (distributed.hydra_overrides)
        logging.getLogger().setLevel(logging.WARNING)
    try:
        if cfg.get("resume"):
            cfg, info = resume.resume_config(cfg, info, run_dir)
        with interrupt.stop_on_signals():
            summary = fit(cfg, run_dir, info, parallel_jobs=_parallel_jobs())
    except BaseException as err:
        if isinstance(err, SystemExit):
            raise
        name = getattr(err, "signal_name", None) or interrupt.stop_requested()
        if isinstance(err, KeyboardInterrupt):
            name = name or "KeyboardInterrupt"
        if name is None:
            _fail(err, cfg, info, run_dir)
            return None
        done = last_checkpoint(run_dir).is_file()
        then = f"resume with: {resume.resume_command(run_dir)}" if done else "no epoch finished"
        write_json(
            {"status": "interrupted", "reason": name, "resume": then, **info},
            run_dir / "summary.json",
        )
        log.warning("interrupted by %s; %s", name, then)
        sys.exit(130 if name in ("SIGINT", "KeyboardInterrupt") else 143)
    finally:
        distributed.cleanup()
    log.info("run folder: %s", run_dir)
    log.info("tensorboard: tensorboard --logdir %s", run_dir)
    return summary["val"]["mIoU"]


def cli() -> None:
    """The ``segexp`` command (and ``python -m segexp``)."""
    sys.argv += distributed.hydra_overrides()  # ranks > 0 under torchrun: Hydra files elsewhere
    main()
