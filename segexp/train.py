"""`segexp` / `python -m segexp`: train one run (or a sweep's jobs); turns a run's outcome into
summary.json and the exit code."""

import logging
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from segexp.config.cli import hydra_app, report_error
from segexp.config.trainer import trainer_settings
from segexp.errors import SegexpError
from segexp.runtime import device_pool, distributed, interrupt
from segexp.runtime.run_folder import RunFolder
from segexp.storage.checkpoint import last_checkpoint, load_checkpoint
from segexp.storage.files import write_json
from segexp.storage.run_record import holds_run
from segexp.sweeps.launchers import parallel_jobs
from segexp.sweeps.resume import completed_run, config_hash
from segexp.training import resume
from segexp.training.faults import explain
from segexp.training.fit import fit
from segexp.training.loggers import tensorboard_command

log = logging.getLogger("segexp")


def _run_info() -> dict:
    hydra_cfg = HydraConfig.get()
    choices = {k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra")}
    return {"overrides": list(hydra_cfg.overrides.task), "choices": choices}


def _record(summary: dict, folder: RunFolder) -> None:
    """summary.json, only where this command may write (runtime/run_folder.py), never into a
    folder that was deleted under the run."""
    if not folder.writable or not folder.path.is_dir():
        folder.withdraw()
        return
    try:
        write_json(summary, folder.path / "summary.json")
    except SegexpError as err:  # e.g. the disk is full: the reason is still printed
        report_error(err)


def _fail(err: BaseException, cfg: DictConfig, info: dict, folder: RunFolder) -> None:
    """summary.json "failed" (in a folder this command may write). A known problem is one line;
    an unknown one is re-raised, except in a sweep, where one failing job (exception, CUDA out of
    memory) must not end the others."""
    run_dir = folder.path if distributed.is_main() else None  # other ranks write a scratch folder
    known = err if isinstance(err, SegexpError) else explain(err, cfg, run_dir)
    reason = str(known) if known is not None else f"{type(err).__name__}: {err}"
    _record({"status": "failed", "reason": reason, **info}, folder)
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    if known is None:
        if not multirun:
            raise err
        log.error("job failed: %s (%s)", folder.path, reason, exc_info=err)
        return
    report_error(known)
    if not multirun:
        sys.exit(1)


def _interrupted(name: str, info: dict, folder: RunFolder) -> None:
    """summary.json "interrupted", with the best finished epoch's val metrics when best.pt
    exists; exit 130 (SIGINT) or 143 (SIGTERM), or submitit's requeue (its preemption signal)."""
    run_dir = folder.path
    if interrupt.is_preemption(name):
        then = "submitit requeues the job, which continues from last.pt in this folder"
    elif last_checkpoint(run_dir).is_file():
        then = f"resume with: {resume.resume_command(run_dir)}"
    else:
        then = "no epoch finished"
    summary = {"status": "interrupted", "reason": name, "resume": then, **info}
    best = run_dir / "checkpoints" / "best.pt"
    if folder.writable and best.is_file():
        try:
            progress = load_checkpoint(best).get("progress", {})
            summary.update(best_epoch=progress.get("best_epoch"), val=progress.get("best_val"))
        except SegexpError as err:
            log.warning("%s", err)
    _record(summary, folder)
    log.warning("interrupted by %s; %s", name, then)
    folder.lock.release()  # before the requeued job (or a resume) takes the folder
    interrupt.hand_over(name)  # submitit's preemption: it requeues the job (and exits)
    sys.exit(130 if name in ("SIGINT", "KeyboardInterrupt") else 143)


def _distributed_timeout(cfg: DictConfig) -> int | None:
    """trainer.distributed_timeout_s; a bad trainer value is named by the run's own checks."""
    try:
        return trainer_settings(cfg.trainer).distributed_timeout_s
    except SegexpError:
        return None


@hydra_app("config", run_folders="outputs")
def main(cfg: DictConfig) -> float | None:
    """Returns the best val mIoU, which Hydra's sweepers maximise."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    info = {**_run_info(), "config_hash": config_hash(cfg)}
    if hydra_cfg.mode == RunMode.MULTIRUN:  # resume: keep a job completed with this config
        try:
            done = completed_run(run_dir, info["config_hash"])
        except SegexpError as err:
            report_error(err)
            return None
        if done is not None:
            log.info("skipped, already completed with this config: %s", run_dir)
            return done["val"]["mIoU"]
    folder = RunFolder(run_dir, hydra_cfg.output_subdir, existed=holds_run(run_dir))
    distributed.setup(_distributed_timeout(cfg))  # under torchrun; a no-op otherwise
    if not distributed.is_main():  # its run_dir is a scratch folder (distributed.hydra_overrides)
        logging.getLogger().setLevel(logging.WARNING)
    try:
        with interrupt.stop_on_signals():
            if distributed.is_main():
                folder.lock.acquire()
            if not folder.existed:
                folder.commit()  # a folder this command created
            if cfg.get("resume"):
                cfg, info = resume.resume_config(cfg, info, run_dir)
            summary = fit(
                cfg, run_dir, info, on_start=folder.commit,
                parallel_jobs=parallel_jobs(HydraConfig.get()),
                sweep_job=HydraConfig.get().mode == RunMode.MULTIRUN,
            )  # fmt: skip
    except BaseException as err:
        if isinstance(err, SystemExit):
            raise
        name = getattr(err, "signal_name", None) or interrupt.stop_requested()
        if isinstance(err, KeyboardInterrupt):
            name = name or "KeyboardInterrupt"
        if name is None:
            _fail(err, cfg, info, folder)
            return None
        _interrupted(name, info, folder)
    finally:
        folder.lock.release()
        device_pool.release()  # the GPU trainer.device=auto took, for the next job
        distributed.cleanup()
    log.info("run folder: %s", run_dir)
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN  # a sweep's jobs side by side
    log.info(
        "tensorboard: %s", tensorboard_command(HydraConfig.get().sweep.dir if multirun else run_dir)
    )
    return summary["val"]["mIoU"]


def cli() -> None:
    """The ``segexp`` command (and ``python -m segexp``)."""
    sys.argv += distributed.hydra_overrides()  # ranks > 0 under torchrun: Hydra files elsewhere
    main()
