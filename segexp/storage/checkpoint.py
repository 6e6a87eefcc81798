"""Checkpoints: one dict per file, written atomically, read without executing pickled code."""

import pickle
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from segexp.errors import SegexpError
from segexp.storage.files import atomic_write


def last_checkpoint(run_dir: str | Path) -> Path:
    """Where a run folder keeps its resume point."""
    return Path(run_dir) / "checkpoints" / "last.pt"


def save_checkpoint(state: dict[str, Any], path: Path, copies: Iterable[Path] = ()) -> None:
    """Atomic and durable (storage/files.py ``atomic_write``): a kill or a full disk at any
    moment leaves either the previous file or the new one, never a torn one. ``copies`` (e.g.
    best.pt) get the same bytes without a second serialisation."""
    with atomic_write(path, "wb", durable=True, copies=copies) as f:
        try:
            torch.save(state, f)
        except RuntimeError as err:
            # torch's writer turns the file's own error (a full disk: ENOSPC) into its
            # "[enforce fail at inline_container.cc] unexpected pos"; the OSError is its context.
            if isinstance(err.__context__, OSError):
                raise err.__context__ from None
            raise


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
