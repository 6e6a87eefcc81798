"""Records and checkpoints are written with the permissions the umask gives."""

import os

import pytest
import torch

from segexp.storage.checkpoint import save_checkpoint
from segexp.storage.files import write_json


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o007, 0o660)])
def test_records_and_checkpoints_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_json({"a": 1}, tmp_path / "summary.json")
        save_checkpoint({"w": torch.ones(1)}, tmp_path / "last.pt")
    finally:
        os.umask(old)
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == mode
    assert (tmp_path / "last.pt").stat().st_mode & 0o777 == mode
