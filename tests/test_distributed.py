"""Two CPU processes with the gloo backend against one process: samplers, metrics, files."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from segexp.config.trainer import trainer_settings
from segexp.data.loaders import build_splits
from segexp.evaluation.loop import Scoring
from segexp.evaluation.loop import evaluate as evaluate_split
from segexp.metrics.confusion import ConfusionMatrix
from segexp.models.unet import UNet
from segexp.models.wrapper import SegmentationModel
from segexp.runtime import distributed
from segexp.runtime.device import make_device
from segexp.runtime.distributed import ShardSampler

from .conftest import REPO, TINY, compose_config, evaluate_tool

# 9 validation samples: 5 on rank 0, 4 on rank 1, so padding by repetition would show.
OVERRIDES = [*TINY, "dataset.val.num_samples=9"]
needs_gloo = pytest.mark.skipif(not dist.is_gloo_available(), reason="torch built without gloo")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def val_confusion() -> tuple[ConfusionMatrix, object]:
    """A fixed model evaluated on the validation split of this process (all of it, or a shard)."""
    cfg = compose_config(OVERRIDES)
    splits = build_splits(cfg)
    torch.manual_seed(0)
    model = SegmentationModel(
        UNet(3, 5, depth=2, base_channels=4), cfg.dataset.mean, cfg.dataset.std
    )
    model.train()
    model(torch.randn(4, 3, 32, 32) * (1 + distributed.rank()))  # running stats differ per rank
    distributed.sync_buffers(model)
    confusion = ConfusionMatrix(5, 255)
    dev = make_device(trainer_settings(cfg.trainer))
    evaluate_split(model, splits.val, dev, Scoring(confusion), num_batches=splits.val_batches)
    return confusion, splits.val.sampler


def _worker(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        confusion, sampler = val_confusion()
        torch.save({"matrix": confusion.matrix, "shard": list(sampler)}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_shard_sampler_splits_without_repeats():
    shards = [list(ShardSampler(range(9), 2, r)) for r in range(2)]
    assert shards == [[0, 2, 4, 6, 8], [1, 3, 5, 7]]


def test_helpers_are_no_ops_in_one_process():
    assert not distributed.is_initialized() and distributed.is_main()
    assert distributed.world_size() == 1
    model = torch.nn.Conv2d(1, 1, 1)
    assert distributed.prepare_model(model, sync_bn=True) == (model, model)
    assert distributed.sampler(range(3), train=True, seed=0) is None
    assert distributed.mean_over_ranks(torch.tensor(6.0), 4) == 1.5


@needs_gloo
def test_all_reduced_confusion_matrix_of_two_gloo_processes_equals_one_process(tmp_path):
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert ranks[0]["shard"] == [0, 2, 4, 6, 8] and ranks[1]["shard"] == [1, 3, 5, 7]
    single, _ = val_confusion()
    assert single.matrix.sum() == 9 * 32 * 32
    for rank in ranks:  # every pixel counted once, on both ranks, with rank 0's BatchNorm
        assert torch.equal(rank["matrix"], single.matrix)


@needs_gloo
def test_torchrun_two_processes_write_one_run_with_single_process_metrics(tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         f"--master_port={free_port()}", "-m", "segexp", *OVERRIDES, "trainer.epochs=1",
         "logger=tensorboard", f"hydra.run.dir={run_dir}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (result.stdout + result.stderr).count("final metrics") == 1  # only rank 0 logs
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["world_size"] == 2
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1

    for split in ("val", "test"):  # one process, the same weights, the whole split
        evaluate_tool(f"run={run_dir}", f"split={split}", f"output={tmp_path / split}")
        single = json.loads((tmp_path / split / "metrics.json").read_text())  # NaN as null
        for key, value in summary[split].items():
            assert single[key] == value, (split, key)


def _accumulation_worker(rank: int, world: int, port: int, out: str) -> None:
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
    from torch.nn.parallel import DistributedDataParallel

    from .test_training_options import _train, micro_batches

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        calls = []

        def counting_hook(state, bucket):
            calls.append(bucket.index())
            return allreduce_hook(state, bucket)

        def ddp(model):
            wrapped = DistributedDataParallel(model)
            wrapped.register_comm_hook(None, counting_hook)
            return wrapped

        mine = micro_batches(count=6)[rank::world]  # rank 0: batches 0, 2, 4; rank 1: 1, 3, 5
        model, steps = _train(mine, accumulate=3, num_batches=3, wrap=ddp)
        torch.save({"params": list(model.parameters()), "calls": calls, "steps": steps},
                   f"{out}/rank{rank}.pt")  # fmt: skip
    finally:
        dist.destroy_process_group()


@needs_gloo
def test_ddp_accumulation_all_reduces_once_per_optimizer_step(tmp_path):
    from .test_training_options import _train, micro_batches

    mp.spawn(_accumulation_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    # 3 micro-batches per rank, one optimizer step: one all-reduce (one bucket), not three
    assert [r["steps"] for r in ranks] == [1, 1] and [r["calls"] for r in ranks] == [[0], [0]]
    everything = micro_batches(count=6)
    images = torch.cat([b[0] for b in everything])
    masks = torch.cat([b[1] for b in everything])
    single, _ = _train([(images, masks)], accumulate=1, num_batches=1)
    for rank in ranks:  # the gradient of all 6 micro-batches in one batch, on both ranks
        for got, want in zip(rank["params"], single.parameters(), strict=True):
            torch.testing.assert_close(got.detach(), want.detach(), atol=1e-6, rtol=0)
