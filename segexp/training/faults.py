"""Turning failures that are not SegexpError into one clear line (CUDA out of memory, a
file-system fault in a write that does not go through storage/files.py, e.g. TensorBoard's,
another process of a torchrun run gone)."""

from pathlib import Path

import torch
from omegaconf import DictConfig

from segexp.errors import SegexpError
from segexp.runtime import distributed
from segexp.storage.files import io_error, is_file_system_fault
from segexp.training.resume import resume_command


def explain(err: BaseException, cfg: DictConfig, run_dir: Path | None = None) -> SegexpError | None:
    """A SegexpError that says what happened and what to change, or None if unknown.
    ``run_dir``: the run's folder, named in the resume command (None: not known here)."""
    if distributed.peer_lost(err):
        reason = str(err).strip().splitlines()[0]
        reason = reason.split("] ", 1)[-1].split(". This is typically", 1)[0][:160]
        return SegexpError(
            f"another process of this torchrun run stopped or stopped answering ({reason}): this "
            "one stops too; checkpoints/last.pt holds the last finished epoch, continue with "
            f"{resume_command(run_dir or Path('<run folder>'))}"
        )
    if isinstance(err, OSError) and is_file_system_fault(err):
        return io_error(err.filename or "a file of the run folder", err)
    if isinstance(err, torch.OutOfMemoryError):
        dataset = cfg.dataset
        size = "x".join(str(s) for s in dataset.get("image_size") or ["?"])
        return SegexpError(
            f"CUDA out of memory with dataset.batch_size={dataset.batch_size} and input size "
            f"{size} ({str(err).strip().splitlines()[0][:160]}): lower dataset.batch_size, "
            "dataset.image_size or the model size (e.g. model.net.base_channels), or use "
            "trainer.precision=bf16/fp16"
        )
    return None
