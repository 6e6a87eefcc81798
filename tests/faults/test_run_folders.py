"""Run and sweep folders: a refusal leaves them as they were; one process per folder."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from segexp.storage.lock import LOCK_NAME
from tests.conftest import REPO, segexp_cli
from tests.faults.conftest import QUICK, one_error


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every folder under ``folder``."""
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished two-epoch run made by the command line (with its .hydra/ record)."""
    run = tmp_path_factory.mktemp("finished") / "run"
    assert segexp_cli(*QUICK, f"hydra.run.dir={run}") == 0
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    return run


@pytest.fixture
def finished_copy(finished, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished, copy, symlinks=True)
    return copy


# --- a refusal leaves every byte of an existing run folder as it was

REFUSALS = {
    "resume, another model": (["model=smp_unet"], "a resumed run keeps its model"),
    "resume, another width": (["model.net.base_channels=8"], "cannot change on resume"),
    "resume, another seed": (["seed=3"], "seed cannot change on resume"),
    "resume, fewer epochs": (["trainer.epochs=1"], "2 epochs of"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_resume_leaves_the_finished_run_as_it_was(finished_copy, capsys, case):
    overrides, message = REFUSALS[case]
    before = snapshot(finished_copy)
    assert segexp_cli(f"resume={finished_copy}", *overrides) == 1
    one_error(capsys, message)
    assert snapshot(finished_copy) == before


@pytest.mark.slow
def test_a_new_run_of_another_architecture_in_a_finished_folder_changes_nothing(
    finished_copy, capsys
):
    before = snapshot(finished_copy)
    rc = segexp_cli(*QUICK, "model.net.base_channels=8", f"hydra.run.dir={finished_copy}")
    assert rc == 1
    one_error(capsys, "was written by a different model or optimizer config")
    assert snapshot(finished_copy) == before


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["truncated", "unsafe"])
def test_a_refused_last_pt_leaves_the_folder_as_it_was(finished_copy, capsys, fault):
    last = finished_copy / "checkpoints" / "last.pt"
    if fault == "truncated":
        last.write_bytes(last.read_bytes()[:300])
    else:
        torch.save({"model": {}, "x": Path("/")}, last)  # a pickled object, not a tensor
    before = snapshot(finished_copy)
    assert segexp_cli(f"resume={finished_copy}") == 1
    one_error(capsys, str(last))
    assert snapshot(finished_copy) == before


def test_a_config_error_in_a_new_folder_is_recorded_there(tmp_path, capsys):
    run = tmp_path / "new"
    assert segexp_cli(*QUICK, "optimizer.lr=-1", f"hydra.run.dir={run}") == 1
    one_error(capsys, "optimizer.lr=-1")
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"
    assert not (run / LOCK_NAME).exists()  # released on the failure


# --- one process per run folder and per sweep folder

HOLD = """
import sys, time
from segexp.storage.lock import FolderLock
FolderLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def holder(folder: Path, seconds: float = 60) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder), str(seconds)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_run_into_a_held_folder_refuses_at_once_naming_the_holder(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    process = holder(run)
    try:
        before = snapshot(run)
        started = time.perf_counter()
        assert segexp_cli(*QUICK, f"hydra.run.dir={run}") == 1
        assert time.perf_counter() - started < 30  # refused without waiting for the holder
        one_error(capsys, f"run folder {run} is in use by PID {process.pid}")
        assert snapshot(run) == before
    finally:
        process.kill()
        process.wait()


@pytest.mark.slow
def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    process = holder(run)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert str(process.pid) in (run / LOCK_NAME).read_text()  # the stale lock file is there
    assert segexp_cli(*QUICK, "trainer.epochs=1", f"hydra.run.dir={run}") == 0
    assert f"took over the stale lock of PID {process.pid}" in capsys.readouterr().out
    assert not (run / LOCK_NAME).exists()  # released at the end


def test_a_second_sweep_into_a_held_sweep_folder_refuses(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    process = holder(sweep)
    try:
        rc = segexp_cli("--multirun", *QUICK, "seed=0,1", f"hydra.sweep.dir={sweep}")
        assert rc == 1
        out = capsys.readouterr()
        text = out.out + out.err
        lines = [line for line in text.splitlines() if line.strip()]
        assert "Traceback" not in text and len(lines) == 1, text  # Hydra's format: [HYDRA]
        assert f"sweep folder {sweep} is in use by PID {process.pid}" in lines[0]
        assert sorted(p.name for p in sweep.iterdir()) == [LOCK_NAME]  # no job started
    finally:
        process.kill()
        process.wait()
