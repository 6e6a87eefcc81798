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
