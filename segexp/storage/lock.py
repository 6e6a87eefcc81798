"""An exclusive lock on a run or sweep folder, held by one process for its whole run.

``flock`` on ``<folder>/.segexp.lock``: the kernel releases it on any exit (SIGKILL included),
so a lock file left by a killed process is stale by construction and is taken over; the file
holds the holder's PID and command so that a refused process can name it.

A folder may also be held by a group of processes that write distinct parts of it, e.g. the
workers of one Optuna study sharing a sweep folder (their job folders are numbered by trial):
``shared_by`` names the group; its members hold a shared lock, the file names the group, and a
process of another group, or one that wants the folder alone, is refused.
"""

import contextlib
import datetime
import fcntl
import logging
import os
import socket
import sys
import time
from pathlib import Path

from segexp.errors import SegexpError
from segexp.storage.files import io_error

log = logging.getLogger(__name__)
LOCK_NAME = ".segexp.lock"


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "another process"
    except OSError:
        return "another process"


def _try_flock(fd: int, operation: int) -> bool:
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


class FolderLock:
    """``acquire()`` or a SegexpError naming the holder at once; ``release()`` on exit.

    ``shared_by``: the group this process belongs to (None: it needs the folder alone)."""

    def __init__(
        self, folder: Path | str, kind: str = "run folder", shared_by: str | None = None
    ) -> None:
        self.folder, self.kind, self.shared_by = Path(folder), kind, shared_by
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def _refuse(self, fd: int, holder: str) -> SegexpError:
        os.close(fd)
        return SegexpError(
            f"{self.kind} {self.folder} is in use by {holder}: wait for it to finish, or give "
            "another folder"
        )

    def _join(self, fd: int) -> bool:
        """A shared lock beside the group's members. The group's first member holds the file
        alone for the moment it writes the group's name: that moment is waited out."""
        for _ in range(40):
            if _try_flock(fd, fcntl.LOCK_SH):
                return True
            time.sleep(0.05)
        return False

    def _open(self) -> tuple[int, bool]:
        """The lock file, opened and locked; whether alone (exclusively: a process that needs
        the folder alone, or a group's first member) or as a member joining its group."""
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as err:
                raise io_error(self.path, err) from None
            alone = _try_flock(fd, fcntl.LOCK_EX)
            if not alone and not (self.shared_by and self._join(fd)):
                raise self._refuse(fd, _holder(self.path))
            # The holder before us may have deleted the file between our open and our lock:
            # then we hold a lock on a file nobody else will see. Start again.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd, alone
            os.close(fd)

    def acquire(self) -> "FolderLock":
        fd, alone = self._open()
        # Alone, whatever the file says was left by a process that no longer runs; joining a
        # group, it names the group that holds the folder.
        recorded = os.read(fd, 4096).decode(errors="replace").strip()
        if not alone:
            if not recorded.startswith(f"{self.shared_by}:"):
                raise self._refuse(fd, recorded or "another process")
            self._fd = fd
            return self
        if recorded:
            log.warning("took over the stale lock of %s (no longer running)", recorded)
        started = datetime.datetime.now().isoformat(timespec="seconds")
        me = f"PID {os.getpid()} on {socket.gethostname()} since {started} ({' '.join(sys.argv)})"
        if self.shared_by:
            me = f"{self.shared_by}: {me}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, me.encode()[:4000], 0)
        if self.shared_by and not _try_flock(fd, fcntl.LOCK_SH):  # let the group's members in
            raise self._refuse(fd, _holder(self.path))
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        if not self.shared_by:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)  # closing releases the flock
        self._fd = None
        if self.shared_by:  # the group's last member removes the file: nobody else holds it
            with contextlib.suppress(FileNotFoundError):
                fd = os.open(self.path, os.O_RDWR)
                if _try_flock(fd, fcntl.LOCK_EX):
                    self.path.unlink(missing_ok=True)
                os.close(fd)

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
