"""Who may change a run folder: the process holding its lock, and only once its checks passed.

A command pointed at a folder that already holds a run (``resume=``, or ``hydra.run.dir`` of an
existing run) leaves every byte there as it was until it has checked everything it can refuse
for (config, files, the checkpoint it continues from) and holds the folder's lock. Until then
its log lines are held in memory, and Hydra's record of the invocation goes to a subfolder of
``.hydra/`` (config/resolvers.py) that a refusal removes again.
"""

import contextlib
import logging
import shutil
from logging.handlers import MemoryHandler
from pathlib import Path

from segexp.storage.lock import FolderLock


class RunFolder:
    def __init__(self, path: Path, hydra_subdir: str | None, existed: bool) -> None:
        self.path, self.existed = Path(path), existed
        self.hydra_subdir = hydra_subdir
        self.committed = False
        self.lock = FolderLock(self.path)
        self._held: list[tuple[logging.FileHandler, MemoryHandler]] = []
        self._hold_log()

    def _hold_log(self) -> None:
        root = logging.getLogger()
        for handler in list(root.handlers):
            if (
                isinstance(handler, logging.FileHandler)
                and Path(handler.baseFilename).parent.resolve() == self.path.resolve()
            ):
                memory = MemoryHandler(capacity=10**6, flushLevel=logging.CRITICAL + 1)
                memory.setLevel(handler.level)
                memory.setFormatter(handler.formatter)
                root.removeHandler(handler)
                root.addHandler(memory)
                self._held.append((handler, memory))

    @property
    def writable(self) -> bool:
        """May a failure be recorded here (summary.json)? Only once this command holds the lock
        of a folder it created, or has started to run in one that held a run."""
        return self.committed

    def commit(self) -> None:
        """The checks passed: from here on the command runs in the folder."""
        root = logging.getLogger()
        for handler, memory in self._held:
            memory.setTarget(handler)
            memory.flush()
            root.removeHandler(memory)
            root.addHandler(handler)
        self._held.clear()
        self.committed = True

    def withdraw(self) -> None:
        """A refusal in a folder this command did not create: undo Hydra's traces of it."""
        if self.committed:
            return
        root = logging.getLogger()
        for handler, memory in self._held:
            root.removeHandler(memory)
            memory.buffer.clear()
            handler.close()
            log_file = Path(handler.baseFilename)
            if log_file.is_file() and log_file.stat().st_size == 0:
                log_file.unlink()  # created empty by Hydra's file handler
        self._held.clear()
        if self.hydra_subdir and Path(self.hydra_subdir).parts[0] == ".hydra":
            mine = self.path / self.hydra_subdir
            if mine != self.path / ".hydra" and mine.is_dir():
                shutil.rmtree(mine, ignore_errors=True)
                with contextlib.suppress(OSError):  # .hydra/ itself, when Hydra just made it
                    mine.parent.rmdir()
