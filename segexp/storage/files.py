"""Files in a run folder: written atomically, with the user's umask, and every file-system fault
turned into one line naming the path and the fix."""

import contextlib
import errno
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from segexp.errors import SegexpError

_FIXES = {
    errno.EROFS: "the file system is read-only: write elsewhere, e.g. hydra.run.dir=<folder>",
    errno.EACCES: "permission denied: make the folder writable or write elsewhere "
    "(hydra.run.dir=<folder>)",
    errno.EPERM: "permission denied: make the folder writable or write elsewhere "
    "(hydra.run.dir=<folder>)",
    errno.ENOSPC: "the disk is full: free space (the previous files are intact) and resume",
    errno.EDQUOT: "the disk quota is exceeded: free space (the previous files are intact)",
    errno.EFBIG: "the file is too large for this file system or ulimit -f: raise the limit or "
    "write elsewhere (the previous files are intact)",
    errno.ENOTDIR: "a part of the path is a file, not a folder: remove it or choose another path",
    errno.EEXIST: "a file is in the way of a folder: remove it or choose another path",
    errno.EISDIR: "the path is a folder: remove it or choose another path",
}


def io_error(path: Path | str, err: OSError) -> SegexpError:
    """One line for a file-system fault: what failed where, and what to do."""
    fix = _FIXES.get(err.errno or -1, "check the path, its permissions and the free space")
    reason = err.strerror or type(err).__name__
    return SegexpError(f"cannot write {path} ({reason}): {fix}")


def is_file_system_fault(err: OSError) -> bool:
    """Read-only, permission denied, no space, too large, a path through a file."""
    return err.errno in _FIXES


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` as the user's umask lets a newly created file have it (mkstemp gives 0o600)."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


@contextlib.contextmanager
def atomic_write(
    path: Path, mode: str = "w", durable: bool = False, copies: Iterable[Path] = ()
) -> Iterator[IO[Any]]:
    """Write to a temporary file beside ``path``, then rename it over ``path``: a reader (or a
    kill, or a full disk) never leaves half a file, and the previous ``path`` survives a fault.
    The file gets the umask's permissions, so a team sharing ``outputs/`` can read it.

    ``copies`` (e.g. best.pt beside last.pt) get the same bytes without writing them twice: a
    hard link to the finished temporary file (a copy where the filesystem has no links), put in
    place before ``path`` so that a kill never leaves ``path`` newer than its copies."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, umask_mode())
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        for copy in copies:
            _place_copy(Path(tmp), Path(copy))
        os.replace(tmp, path)
        tmp = None
        if durable:  # the rename itself is durable only once the folder entry is on disk
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except OSError as err:
        raise io_error(path, err) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _place_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.unlink(tmp)
        try:
            os.link(source, tmp)
        except OSError:  # no hard links here (some network and FAT filesystems)
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(data: dict[str, Any], path: Path) -> None:
    """Atomic: a reader never sees half a file. NaN (a class absent from a split) becomes null."""
    with atomic_write(path) as f:
        json.dump(_nan_to_none(data), f, indent=2)
        f.write("\n")


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    return value


def check_folder_writable(path: Path | str, key: str, given: Path | str | None = None) -> None:
    """Before anything is written: ``path`` can be (or is) a folder this process may write in.
    ``given``: the value the user gave, when ``path`` is its folder.

    Hydra creates the run folder before segexp runs, so a path through a file, a read-only file
    system or a folder without write permission would otherwise end in Hydra's traceback.
    """
    path = Path(path)
    shown = f"{key}={given if given is not None else path}"
    for part in [path, *path.parents]:
        if not part.exists():
            continue
        if not part.is_dir():
            raise SegexpError(
                f"{shown}: {part} is a file, not a folder: remove it or give another folder"
            )
        if not os.access(part, os.W_OK | os.X_OK):
            raise SegexpError(
                f"{shown}: cannot write into {part} (read-only or permission denied): make "
                f"it writable or give another folder with {key}=<folder>"
            )
        return


def check_output(path: Path | str, key: str, *, folder: bool, overwrite: bool = True) -> Path:
    """What every command checks before its work, for each path it will write (its ``key``): a
    folder it creates or fills, or a file (never replaced unless ``overwrite``)."""
    path = Path(path)
    if folder:
        check_folder_writable(path, key)
        return path
    if path.is_dir():
        raise SegexpError(f"{key}={path} is a folder: give the path of a file to write")
    if path.exists() and not overwrite:
        raise SegexpError(f"{key}={path} already exists: give another {key}= or overwrite=true")
    check_folder_writable(path.parent, key, given=path)
    return path
