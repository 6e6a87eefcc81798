"""File-system faults: one line naming the path and the fix, and earlier files intact."""

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from segexp.errors import SegexpError
from segexp.storage import checkpoint
from segexp.storage.checkpoint import load_checkpoint, save_checkpoint
from segexp.storage.files import write_json
from segexp.training import fit as fit_module
from tests.conftest import segexp_cli
from tests.faults.conftest import QUICK, one_error


def test_a_run_folder_path_that_is_a_file(tmp_path, capsys):
    path = tmp_path / "taken"
    path.write_text("mine")
    assert segexp_cli(*QUICK, f"hydra.run.dir={path}") == 1
    one_error(capsys, f"{path} is a file, not a folder")
    assert path.read_text() == "mine"
    assert segexp_cli(*QUICK, f"hydra.run.dir={path}/run") == 1
    one_error(capsys, f"{path} is a file, not a folder")


def test_a_read_only_output_folder(tmp_path, capsys, monkeypatch):
    real = os.access
    # Tests may run as root, which writes anywhere: the check asks os.access, as on a read-only
    # file system, where access(2) says no even to root.
    monkeypatch.setattr(os, "access", lambda p, mode: real(p, mode) and Path(p) != tmp_path)
    assert segexp_cli(*QUICK, f"hydra.run.dir={tmp_path}/run") == 1
    one_error(capsys, f"cannot write into {tmp_path} (read-only or permission denied)")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "code, fix",
    [
        (errno.ENOSPC, "the disk is full"),
        (errno.EFBIG, "too large"),
        (errno.EROFS, "read-only"),
        (errno.EACCES, "permission denied"),
    ],
)
def test_a_fault_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch, code, fix):
    path = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1}, path)

    def failing_save(state, f):
        f.write(b"PK partial")
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(checkpoint.torch, "save", failing_save)
    with pytest.raises(SegexpError) as err:
        save_checkpoint({"epoch": 2}, path)
    message = str(err.value)
    assert message.startswith(f"cannot write {path}") and fix in message and "\n" not in message
    monkeypatch.undo()
    assert load_checkpoint(path) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


class FullDisk:
    """A file whose disk fills after ``room`` bytes: writes then fail with ENOSPC, as a real full
    disk's do, inside torch's own zip writer (which reports them as "unexpected pos")."""

    def __init__(self, file, room: int) -> None:
        self.file, self.room = file, room

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()


def test_torchs_own_error_for_a_full_disk_is_named_as_one(tmp_path, monkeypatch):
    real = torch.save
    monkeypatch.setattr(checkpoint.torch, "save", lambda state, f: real(state, FullDisk(f, 100)))
    with open(tmp_path / "x", "wb") as plain, pytest.raises(RuntimeError, match="unexpected pos"):
        real({"w": torch.zeros(1000)}, FullDisk(plain, 100))  # what torch itself raises
    with pytest.raises(SegexpError) as err:
        save_checkpoint({"w": torch.zeros(1000)}, tmp_path / "last.pt")
    assert str(err.value).startswith(f"cannot write {tmp_path / 'last.pt'} (No space left")
    assert "the disk is full" in str(err.value)


@pytest.mark.slow
def test_a_full_disk_during_a_run_is_one_line_and_keeps_epoch_1(tmp_path, monkeypatch, capsys):
    real = torch.save

    def full_at_epoch_2(state, f):
        real(state, FullDisk(f, 1000) if state["epoch"] == 2 else f)

    monkeypatch.setattr(checkpoint.torch, "save", full_at_epoch_2)
    run = tmp_path / "run"
    assert segexp_cli(*QUICK, f"hydra.run.dir={run}") == 1
    one_error(
        capsys,
        f"cannot write {run / 'checkpoints' / 'last.pt'} (No space left on device)",
        "the disk is full",
        f"python -m segexp resume={run} (last.pt of epoch 1 is intact)",
    )
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 1
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"


def test_a_fault_in_any_other_write_is_one_line(tmp_path, monkeypatch, capsys):
    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "write_text", read_only)  # resolved_config.yaml, at the start
    run = tmp_path / "run"
    assert segexp_cli(*QUICK, f"hydra.run.dir={run}") == 1
    one_error(capsys, "resolved_config.yaml (Read-only file system): the file system is read-only")


def test_a_record_under_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(
        SegexpError, match=r"cannot write .*file/summary\.json .*a file is in the way"
    ):
        write_json({"a": 1}, tmp_path / "file" / "summary.json")


def test_a_run_folder_deleted_mid_run_stops_the_run_and_stays_deleted(
    tmp_path, monkeypatch, capsys
):
    run, real = tmp_path / "run", fit_module.validate_epoch

    def deleted_at_epoch_2(exp, epoch, writer):
        if epoch == 2:
            shutil.rmtree(run)
        return real(exp, epoch, writer)

    monkeypatch.setattr(fit_module, "validate_epoch", deleted_at_epoch_2)
    assert segexp_cli(*QUICK, f"hydra.run.dir={run}") == 1
    one_error(capsys, f"the run folder {run} was deleted while the run went on (after epoch 2)")
    assert not run.exists()  # no new folder with a checkpoint and a summary but no record
