"""Checkpoints: one dict per file, written atomically, read without executing pickled code."""

import os
import pickle
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from segexp.errors import SegexpError


def last_checkpoint(run_dir: str | Path) -> Path:
    """Where a run folder keeps its resume point."""
    return Path(run_dir) / "checkpoints" / "last.pt"


def save_checkpoint(state: dict[str, Any], path: Path, copies: Iterable[Path] = ()) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``.

    A kill at any moment leaves either the previous file or the new one, never a torn one.
    ``copies`` (e.g. best.pt) get the same bytes without a second serialisation: a hard link
    to the written file (a copy where the filesystem has no links), put in place before
    ``path`` so that a kill never leaves ``path`` newer than its copies.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        for copy in copies:
            _place_copy(tmp, Path(copy))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # The rename itself is durable only once the folder entry is on disk.
    for folder in {path.parent, *(Path(c).parent for c in copies)}:
        _fsync_dir(folder)


def _temporary(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def _place_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(target)
    try:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:  # no hard links here (some network and FAT filesystems)
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_dir(folder: Path) -> None:
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True``: tensors and plain containers only.

    A file that holds any other pickled object (which could run code when unpickled) is refused
    with a SegexpError, and nothing in it is executed.
    """
    path = Path(path)
    if not path.is_file():
        raise SegexpError(f"checkpoint {path} does not exist: check the path")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise SegexpError(
            f"refusing to load {path}: it contains pickled Python objects, not only tensors "
            f"({_first_line(err)}). Load only checkpoints you trust and re-save them as a plain "
            "state_dict"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise SegexpError(
            f"cannot read checkpoint {path} ({type(err).__name__}: {_first_line(err)}): "
            "the file is truncated or not a PyTorch checkpoint"
        ) from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
