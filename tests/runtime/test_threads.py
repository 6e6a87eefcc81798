"""The thread policy: threads from the cores, the load and the processes; num_threads."""

import pytest

from segexp.config.trainer import trainer_settings
from segexp.errors import SegexpError
from segexp.runtime.threads import auto_threads, resolve_threads


@pytest.mark.parametrize(
    ("cores", "load", "processes", "threads"),
    [
        (2, 0.1, 1, 2),  # quiet: every core
        (2, 1.2, 1, 1),  # one core busy elsewhere
        (2, 7.5, 1, 1),  # oversubscribed: never below one
        (16, 4.0, 1, 12),
        (16, 0.0, 4, 4),  # torchrun / sweep: the cores shared among the processes
        (2, 0.0, 8, 1),
    ],
)
def test_auto_threads_policy(cores, load, processes, threads):
    assert auto_threads(cores, load, processes) == threads


def test_num_threads_setting(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert resolve_threads("auto") == 1  # the environment's explicit choice wins
    assert resolve_threads(3) == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "64")
    assert resolve_threads("auto") == 1
    for bad in (0, "many", 1.5):
        with pytest.raises(SegexpError, match=r"trainer\.num_threads"):
            trainer_settings({"num_threads": bad})


def test_busy_cores_counts_the_other_runnable_tasks_now(tmp_path):
    from segexp.runtime.threads import busy_cores

    loadavg = tmp_path / "loadavg"
    loadavg.write_text("1.05 1.05 2.07 1/230 4242\n")  # a lagging average; only segexp runs
    assert busy_cores(samples=3, interval_s=0, source=loadavg) == 0
    loadavg.write_text("0.10 0.05 0.01 3/230 4242\n")  # two others just started
    assert busy_cores(samples=3, interval_s=0, source=loadavg) == 2
