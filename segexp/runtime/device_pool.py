"""One GPU per run: ``trainer.device=auto`` takes a GPU that no other segexp run of this machine
holds, so that parallel jobs (``hydra/launcher=joblib``, or runs started side by side) each get
their own device instead of all taking ``cuda:0``.

A GPU is held through a lock file per device (storage/lock.py ``FolderLock``, ``flock``: released
on any exit, SIGKILL included) in a folder of the machine's temporary directory, named by the
device's UUID, so that two jobs that see the same GPU under different numbers (each its own
``CUDA_VISIBLE_DEVICES``) still see one device. ``trainer.device=cuda:N`` (or ``cuda``) chooses
a device without the pool: several runs may then share it on purpose. Under torchrun each process
takes ``cuda:<LOCAL_RANK>`` as before.
"""

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from segexp.errors import SegexpError
from segexp.storage.lock import FolderLock

log = logging.getLogger(__name__)
# One folder per user: lock files of another user could not be opened for writing.
LOCKS = Path(tempfile.gettempdir()) / f"segexp-devices-{os.getuid()}"
_held: list[FolderLock] = []  # the device this process holds (one run at a time)


def gpu_ids() -> list[str]:
    """The visible GPUs' identities, in ``cuda:N`` order: UUIDs where torch gives them."""
    ids = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        uuid = getattr(props, "uuid", None)
        ids.append(f"GPU-{uuid}" if uuid is not None else f"pci-{props.pci_bus_id}")
    return ids


def claim(ids: Sequence[str], locks: Path | None = None) -> int:
    """The index of the first device in ``ids`` that no other process holds, held by this one
    until ``release()`` or its exit; one line naming the holders when every device is held."""
    release()
    locks = locks or LOCKS
    holders = []
    for index, device in enumerate(ids):
        folder = locks / device
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _held.append(FolderLock(folder, kind=f"cuda:{index} ({device})").acquire())
            return index
        except SegexpError as err:
            holders.append(str(err).split(": wait for it", 1)[0])
        except OSError as err:
            raise SegexpError(f"cannot use the device locks in {locks} ({err}): "
                              "give trainer.device=cuda:N") from None  # fmt: skip
    raise SegexpError(
        f"trainer.device=auto: all {len(ids)} GPUs of this machine are held by other segexp runs "
        f"({'; '.join(holders)}): run at most {len(ids)} jobs at once (e.g. "
        f"hydra.launcher.n_jobs={len(ids)}), or share a GPU on purpose with trainer.device=cuda:N"
    )


def release() -> None:
    """Give back the device this process holds (the end of a run)."""
    while _held:
        _held.pop().release()


def check_parallel_jobs(jobs: int, device: str, gpus: int) -> None:
    """A sweep that runs ``jobs`` at once with ``trainer.device=auto`` on ``gpus`` GPUs: refused
    before any job starts when there are more jobs than GPUs (the extra jobs would find every GPU
    held)."""
    if device != "auto" or gpus == 0 or jobs <= gpus:
        return
    raise SegexpError(
        f"hydra.launcher.n_jobs runs {jobs} jobs at once but this machine has {gpus} GPUs, one "
        f"per job with trainer.device=auto: give hydra.launcher.n_jobs={gpus}, or "
        "trainer.device=cuda:N to share one GPU among the jobs on purpose"
    )
