"""An exclusive lock on a run or sweep folder, held by one process for its whole run.

``flock`` on ``<folder>/.segexp.lock``: the kernel releases it on any exit (SIGKILL included),
so a lock file left by a killed process is stale by construction and is taken over; the file
holds the holder's PID and command so that a refused process can name it.
"""

import datetime
import fcntl
import logging
import os
import socket
import sys
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


class FolderLock:
    """``acquire()`` or a SegexpError naming the holder at once; ``release()`` on exit."""

    def __init__(self, folder: Path | str, kind: str = "run folder") -> None:
        self.folder, self.kind = Path(folder), kind
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "FolderLock":
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as err:
                raise io_error(self.path, err) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise SegexpError(
                    f"{self.kind} {self.folder} is in use by {_holder(self.path)}: wait for it "
                    "to finish, or give another folder"
                ) from None
            # The holder before us may have deleted the file between our open and our lock:
            # then we hold a lock on a file nobody else will see. Start again.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        stale = os.read(fd, 4096).decode(errors="replace").strip()
        if stale:
            log.warning("took over the stale lock of %s (no longer running)", stale)
        started = datetime.datetime.now().isoformat(timespec="seconds")
        me = f"PID {os.getpid()} on {socket.gethostname()} since {started} ({' '.join(sys.argv)})"
        os.ftruncate(fd, 0)
        os.pwrite(fd, me.encode()[:4000], 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)  # closing releases the flock
        self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
