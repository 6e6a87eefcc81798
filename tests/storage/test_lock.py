"""FolderLock: exclusive between two opens, and released."""

import os

import pytest

from segexp.errors import SegexpError
from segexp.storage.lock import LOCK_NAME, FolderLock


def test_the_lock_is_exclusive_between_two_opens_and_released(tmp_path):
    first = FolderLock(tmp_path).acquire()
    with pytest.raises(SegexpError, match=f"in use by PID {os.getpid()}"):
        FolderLock(tmp_path).acquire()
    first.release()
    with FolderLock(tmp_path):
        assert (tmp_path / LOCK_NAME).is_file()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_group_shares_a_folder_and_another_group_or_a_lone_process_is_refused(tmp_path):
    study = "Optuna study 'a' in sqlite:////s.db"
    first = FolderLock(tmp_path, "sweep folder", shared_by=study).acquire()
    second = FolderLock(tmp_path, "sweep folder", shared_by=study).acquire()  # a member: in
    with pytest.raises(SegexpError, match=f"in use by {study}: PID {os.getpid()}"):
        FolderLock(tmp_path, "sweep folder").acquire()  # a plain sweep
    with pytest.raises(SegexpError, match="in use by Optuna study 'a'"):
        FolderLock(tmp_path, "sweep folder", shared_by="Optuna study 'b' in x").acquire()
    first.release()
    assert (tmp_path / LOCK_NAME).is_file()  # the second member is still there
    with pytest.raises(SegexpError, match="in use by"):
        FolderLock(tmp_path).acquire()
    second.release()  # the last member leaves: the folder is free
    assert not (tmp_path / LOCK_NAME).exists()
    with FolderLock(tmp_path, "sweep folder", shared_by="Optuna study 'b' in x"):
        assert (tmp_path / LOCK_NAME).read_text().startswith("Optuna study 'b' in x: PID")
