"""Multi-process training with torchrun: process group, samplers, DDP wrapping, rank-0 writes.

    torchrun --nproc_per_node=4 -m segexp model=smp_unet aug=strong

Every helper is a no-op in a single process, so the training code reads the same either way.
``dataset.batch_size`` is per process (the global batch is batch_size x world size), as in
torchvision's reference scripts.
"""

import atexit
import datetime
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler, Sampler

from segexp.errors import SegexpError


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    """Only this process logs to TensorBoard and writes checkpoints and summary.json."""
    return rank() == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _export_slurm_environment() -> None:
    """A Slurm job with several tasks (submitit's tasks_per_node > 1) describes its processes in
    SLURM_* variables; submitit translates them into the RANK / WORLD_SIZE / MASTER_* that
    torchrun would have set."""
    if launched_by_torchrun() or int(os.environ.get("SLURM_NTASKS", "1")) <= 1:
        return
    try:
        from submitit.helpers import TorchDistributedEnvironment
    except ImportError:
        return
    TorchDistributedEnvironment().export(set_cuda_visible_devices=False)  # we pick LOCAL_RANK


def setup(timeout_s: int | None = None) -> None:
    """Join the process group torchrun describes (env://); NCCL on CUDA, gloo on CPU.

    ``timeout_s`` bounds how long a collective waits for the other processes: a process that
    died is noticed at once (its connections close), but a machine that lost power or its
    network closes nothing, and would otherwise hold the others for the backend's default."""
    _export_slurm_environment()
    if is_initialized() or not launched_by_torchrun():
        return
    timeout = None if timeout_s is None else datetime.timedelta(seconds=timeout_s)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl", timeout=timeout)
    else:
        dist.init_process_group("gloo", timeout=timeout)


# What gloo and NCCL say when another process of the group died or stopped answering.
PEER_LOST = (
    "connection reset by peer",
    "connection closed by peer",
    "broken pipe",
    "socket timeout",
    "timed out",
    "remote process exited",
    "communicator was aborted",
)


def peer_lost(err: BaseException) -> bool:
    """Whether ``err`` is a collective that failed because another process is gone."""
    if not is_initialized() or not isinstance(err, RuntimeError):
        return False
    return isinstance(err, dist.DistError) or any(m in str(err).lower() for m in PEER_LOST)


def cleanup() -> None:
    if is_initialized():
        dist.destroy_process_group()


def hydra_overrides() -> list[str]:
    """Extra command-line overrides for ranks other than 0.

    Every rank runs the Hydra app; only rank 0's run folder is the run. The others keep their
    Hydra files and log in a temporary folder, removed at exit, so a run never shows
    half-empty twin folders.
    """
    if int(os.environ.get("RANK", "0")) == 0:
        return []
    scratch = Path(tempfile.gettempdir()) / f"segexp-rank{os.environ['RANK']}-{os.getpid()}"
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return [f"hydra.run.dir={scratch}", "hydra.output_subdir=null"]


class ShardSampler(Sampler[int]):
    """Evaluation shards: rank r gets samples r, r + world, ... and nothing twice.

    DistributedSampler pads the shards to equal length by repeating samples, which would count
    those samples twice in the all-reduced confusion matrix.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int) -> None:
        self.indices = list(range(rank, len(dataset), num_replicas))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def sampler(dataset: Dataset, *, train: bool, seed: int) -> Sampler | None:
    """None in a single process (the DataLoader shuffles or not by itself)."""
    if not is_initialized():
        return None
    if train:
        return DistributedSampler(dataset, shuffle=True, seed=seed, drop_last=True)
    return ShardSampler(dataset, world_size(), rank())


def set_epoch(loader, epoch: int) -> None:
    """Reshuffle the training shards differently each epoch."""
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)


def prepare_model(model: nn.Module, sync_bn: bool) -> tuple[nn.Module, nn.Module]:
    """Returns (model, the module to train): the latter is DDP-wrapped in a process group.

    Evaluation uses the plain model: DDP's forward would broadcast buffers, a collective that
    deadlocks when ranks hold different numbers of evaluation batches.
    """
    if not is_initialized():
        return model, model
    device = next(model.parameters()).device
    if sync_bn:
        if device.type != "cuda":
            raise SegexpError(
                "trainer.sync_bn=true needs CUDA (PyTorch's SyncBatchNorm runs on GPUs only): "
                "leave it false for CPU processes"
            )
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = (
        [device.index if device.index is not None else 0] if device.type == "cuda" else None
    )
    return model, nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def sync_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank before evaluating.

    DDP broadcasts them at the start of each training forward, so after the last step every
    rank still holds the statistics of its own last batch, and would evaluate its shard with a
    slightly different model than the one rank 0 saves.
    """
    if is_initialized():
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def broadcast_path(path: Path) -> Path:
    """Rank 0's path on every rank (run folders are named after the clock at start-up)."""
    return Path(from_main(str(path)))


def from_main(value: Any) -> Any:
    """Rank 0's ``value`` (any picklable object) on every rank: one decision for all of them."""
    if not is_initialized():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def mean_over_ranks(total: torch.Tensor, count: int) -> float:
    """sum(total) / sum(count) across ranks: a loss averaged over every rank's batches."""
    if is_initialized():
        pair = torch.stack([total.detach().double().reshape(()), total.new_tensor(count).double()])
        dist.all_reduce(pair)
        total, count = pair[0], int(pair[1].item())
    return total.item() / max(count, 1)
