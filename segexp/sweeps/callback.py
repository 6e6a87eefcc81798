"""Hydra callback: the sweep report at the end of every multirun, and a non-zero exit on failure."""

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from segexp.config.cli import report_error
from segexp.errors import SegexpError
from segexp.storage.files import check_folder_writable
from segexp.storage.lock import FolderLock
from segexp.sweeps.launchers import check_devices
from segexp.sweeps.naming import name_jobs_by_swept_keys
from segexp.sweeps.storage import check_storage, study_label
from segexp.training.loggers import tensorboard_command

log = logging.getLogger("segexp")


class SweepReport(Callback):
    """Also holds the sweep folder's lock from the first job to the report: two sweeps into one
    folder would interleave their jobs' files. The processes of one shared Optuna study share
    the folder (their jobs are numbered by trial, sweeps/study.py); another sweep is refused."""

    def __init__(self) -> None:
        self.lock: FolderLock | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from segexp.sweeps.adaptive import check_config  # statistics: only for a multirun

        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            check_config(config)  # an adaptive sweep's settings, before anything is created
            check_folder_writable(sweep_dir, "hydra.sweep.dir")
            check_storage(config)  # a storage that cannot be opened: before any folder is made
            check_devices(config)
            sweep_dir.mkdir(parents=True, exist_ok=True)
            self.lock = FolderLock(sweep_dir, "sweep folder", study_label(config)).acquire()
            name_jobs_by_swept_keys(config)
        except SegexpError as err:
            report_error(err)
            raise SystemExit(1) from None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            self._report(config)
        finally:
            if self.lock is not None:
                self.lock.release()

    def _report(self, config: DictConfig) -> None:
        # Imported here: Hydra builds this callback for single runs too, which should not pay
        # for the report's statistics (importing scipy.stats is a noticeable part of start-up).
        from segexp.sweeps.jobs import find_job_dirs
        from segexp.sweeps.report import failure_line, write_report

        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not find_job_dirs(sweep_dir):  # a shared study already held its n_trials
            log.info("no job in %s: no sweep report", sweep_dir)
            return
        try:
            jobs = write_report(sweep_dir)
        except SegexpError as err:  # e.g. the protocol guard: one line, the jobs stay as they are
            report_error(err)
            raise SystemExit(1) from None
        except Exception as err:  # a broken report must not hide the jobs' own results
            log.error("sweep report failed (%s: %s); retry: segexp-report sweep=%s",
                      type(err).__name__, err, sweep_dir)  # fmt: skip
            raise SystemExit(1) from err
        log.info("sweep report: %s (regenerate: segexp-report sweep=%s)",
                 sweep_dir / "report.md", sweep_dir)  # fmt: skip
        log.info("tensorboard: %s", tensorboard_command(sweep_dir))
        if study_label(config) is not None:
            # The folder of a shared study: a job without summary.json may be running in
            # another of the study's processes; only finished jobs decide the exit status.
            elsewhere = [job.name for job in jobs if job.status == "unfinished"]
            if elsewhere:
                log.info("running in another process of the study, or killed: %s",
                         ", ".join(elsewhere))  # fmt: skip
            jobs = [job for job in jobs if job.status != "unfinished"]
        line = failure_line(jobs)
        if line:
            log.error("%s", line)
            raise SystemExit(1)
