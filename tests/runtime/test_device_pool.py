"""One GPU per job: trainer.device=auto takes a GPU no other run holds (the assignment logic,
on the CPU with stand-in device identities)."""

import pytest
import torch

from segexp.errors import SegexpError
from segexp.runtime import device_pool
from segexp.runtime.device import resolve_device
from segexp.storage.lock import FolderLock

GPUS = ["GPU-aaaa", "GPU-bbbb"]


@pytest.fixture
def two_gpus(tmp_path, monkeypatch):
    """A machine with two GPUs, as far as the pool can tell; its locks in tmp_path."""
    monkeypatch.setattr(device_pool, "LOCKS", tmp_path)
    monkeypatch.setattr(device_pool, "gpu_ids", lambda: GPUS)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    yield tmp_path
    device_pool.release()


def held_by_another_run(locks, gpu: str) -> FolderLock:
    (locks / gpu).mkdir(parents=True, exist_ok=True)
    return FolderLock(locks / gpu, kind="a GPU").acquire()  # another open: another holder


def test_auto_takes_a_gpu_no_other_run_holds(two_gpus):
    assert resolve_device("auto", exclusive=True) == torch.device("cuda", 0)
    device_pool.release()
    other = held_by_another_run(two_gpus, GPUS[0])
    assert resolve_device("auto", exclusive=True) == torch.device("cuda", 1)
    assert resolve_device("auto", exclusive=True) == torch.device("cuda", 1)  # the next job
    other.release()
    device_pool.release()  # the end of this run: its GPU is free again
    assert device_pool.claim(GPUS, two_gpus) == 0


def test_every_gpu_held_is_one_line_naming_the_holders_and_the_fix(two_gpus):
    others = [held_by_another_run(two_gpus, gpu) for gpu in GPUS]
    with pytest.raises(SegexpError) as err:
        resolve_device("auto", exclusive=True)
    line = str(err.value)
    assert line.startswith("trainer.device=auto: all 2 GPUs of this machine are held by other")
    assert line.count("is in use by PID") == 2 and "hydra.launcher.n_jobs=2" in line
    assert "trainer.device=cuda:N" in line and "\n" not in line
    for other in others:
        other.release()


def test_a_chosen_gpu_tools_and_torchrun_take_no_gpu_from_the_pool(two_gpus, monkeypatch):
    for gpu in GPUS:
        held_by_another_run(two_gpus, gpu)
    assert resolve_device("auto") == torch.device("cuda")  # evaluate, predict, export
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert resolve_device("auto", exclusive=True) == torch.device("cuda")  # LOCAL_RANK's


def test_more_parallel_jobs_than_gpus_is_refused_before_any_job():
    device_pool.check_parallel_jobs(2, "auto", gpus=2)
    device_pool.check_parallel_jobs(4, "cuda:0", gpus=2)  # shared on purpose
    device_pool.check_parallel_jobs(4, "auto", gpus=0)  # a CPU machine
    with pytest.raises(SegexpError) as err:
        device_pool.check_parallel_jobs(3, "auto", gpus=2)
    assert str(err.value) == (
        "hydra.launcher.n_jobs runs 3 jobs at once but this machine has 2 GPUs, one per job "
        "with trainer.device=auto: give hydra.launcher.n_jobs=2, or trainer.device=cuda:N to "
        "share one GPU among the jobs on purpose"
    )
