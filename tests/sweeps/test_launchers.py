"""What a launcher runs at once, and a sweep refused before its first job when the machine's
GPUs cannot give each parallel job its own."""

import pytest
import torch
from hydra.types import RunMode
from omegaconf import OmegaConf

from segexp.errors import SegexpError
from segexp.sweeps.launchers import check_devices, parallel_jobs

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


def sweep(launcher: dict, device: str = "auto", mode=RunMode.MULTIRUN):
    return OmegaConf.create(
        {"hydra": {"mode": mode, "launcher": launcher}, "trainer": {"device": device}}
    )


def test_joblib_runs_n_jobs_at_once_the_other_launchers_one(monkeypatch):
    monkeypatch.setattr("segexp.sweeps.launchers.available_cores", lambda: 6)
    assert parallel_jobs(sweep({"_target_": JOBLIB, "n_jobs": 3}).hydra) == 3
    assert parallel_jobs(sweep({"_target_": JOBLIB, "n_jobs": -1}).hydra) == 6  # every core
    assert parallel_jobs(sweep({"_target_": "hydra._internal.BasicLauncher"}).hydra) == 1
    single = sweep({"_target_": JOBLIB, "n_jobs": 3}, mode=RunMode.RUN)
    assert parallel_jobs(single.hydra) == 1


def test_a_sweep_of_more_parallel_jobs_than_gpus_is_refused_at_its_start(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_devices(sweep({"_target_": JOBLIB, "n_jobs": 2}))
    check_devices(sweep({"_target_": JOBLIB, "n_jobs": 4}, device="cuda:0"))
    with pytest.raises(SegexpError, match="runs 4 jobs at once but this machine has 2 GPUs"):
        check_devices(sweep({"_target_": JOBLIB, "n_jobs": 4}))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    check_devices(sweep({"_target_": JOBLIB, "n_jobs": 4}))  # CPU jobs share the cores
