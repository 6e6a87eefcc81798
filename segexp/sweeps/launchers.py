"""What a sweep's launcher runs at once on this machine, and whether its GPUs allow it."""

import torch
from hydra.types import RunMode
from omegaconf import DictConfig

from segexp.config.trainer import trainer_settings
from segexp.errors import SegexpError
from segexp.runtime.device_pool import check_parallel_jobs
from segexp.runtime.threads import available_cores


def parallel_jobs(hydra_cfg: DictConfig) -> int:
    """Jobs a sweep launcher runs at once: joblib's n_jobs (-1: every core); 1 otherwise (the
    basic launcher runs one after the other, SLURM's jobs run on their own machines)."""
    launcher = hydra_cfg.get("launcher") or {}
    if hydra_cfg.mode != RunMode.MULTIRUN or "joblib" not in str(launcher.get("_target_", "")):
        return 1
    n_jobs = int(launcher.get("n_jobs", -1) or 1)
    return available_cores() if n_jobs < 0 else n_jobs


def check_devices(config: DictConfig) -> None:
    """At the start of a multirun: more parallel jobs than GPUs, each wanting its own
    (trainer.device=auto), is one line before any job starts."""
    jobs = parallel_jobs(config.hydra)
    if jobs <= 1 or not torch.cuda.is_available():
        return
    try:
        device = trainer_settings(config.get("trainer")).device
    except SegexpError:
        return  # each job names the bad value itself
    check_parallel_jobs(jobs, device, torch.cuda.device_count())
