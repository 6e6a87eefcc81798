"""Two CPU processes with the gloo backend against one process: samplers, metrics, files."""

import json
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from segexp import distributed, evaluate
from segexp.data.loaders import build_splits
from segexp.distributed import ShardSampler
from segexp.engine import evaluate as evaluate_split
from segexp.metrics import ConfusionMatrix
from segexp.rundir import load_run
from segexp.train import fit

from .conftest import TINY, compose_config

# 9 validation samples: 5 on rank 0, 4 on rank 1, so padding by repetition would show.
OVERRIDES = [*TINY, "trainer.epochs=1", "logger=none", "dataset.val.num_samples=9"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, run_dir: str, scratch: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        # Each rank is handed its own folder, as Hydra does; only rank 0's may be written.
        fit(compose_config(OVERRIDES), run_dir if rank == 0 else scratch)
        cfg = compose_config(OVERRIDES)
        splits = build_splits(cfg)
        run = load_run(run_dir, device="cpu")
        confusion = ConfusionMatrix(5, 255)
        evaluate_split(
            run.model, lambda logits, masks: logits.new_zeros(()), splits.val, run.dev, confusion,
            num_batches=splits.val_batches,
        )  # fmt: skip
        shard = sorted(splits.val.sampler.indices)
        # Running statistics that differ per rank end up as rank 0's everywhere.
        norm = torch.nn.BatchNorm2d(3)
        norm.running_mean.fill_(float(rank + 1))
        distributed.sync_buffers(norm)
        gathered = [torch.zeros(3) for _ in range(world)]
        dist.all_gather(gathered, norm.running_mean)
        assert all(torch.equal(g, torch.ones(3)) for g in gathered)
        torch.save({"matrix": confusion.matrix, "shard": shard}, f"{scratch}/rank{rank}.pt")
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


@pytest.mark.skipif(not dist.is_gloo_available(), reason="torch built without gloo")
def test_two_gloo_processes_train_and_all_reduce_like_one(tmp_path):
    run_dir, scratch = tmp_path / "run", tmp_path / "scratch"
    run_dir.mkdir()
    scratch.mkdir()
    mp.spawn(_worker, args=(2, free_port(), str(run_dir), str(scratch)), nprocs=2, join=True)

    ranks = [torch.load(scratch / f"rank{r}.pt") for r in range(2)]
    assert ranks[0]["shard"] == [0, 2, 4, 6, 8] and ranks[1]["shard"] == [1, 3, 5, 7]
    assert torch.equal(ranks[0]["matrix"], ranks[1]["matrix"])  # all-reduced on both ranks

    # One process, the same weights, the whole validation split.
    single = evaluate.main([f"run={run_dir}", "split=val", f"output={tmp_path / 'eval'}"])
    assert ranks[0]["matrix"].tolist() == single["confusion_matrix"]
    assert ranks[0]["matrix"].sum() == 9 * 32 * 32  # every pixel once, none repeated

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["world_size"] == 2
    for key in ("mIoU", "mDice", "pixel_acc", "mean_class_acc", "per_class_iou"):
        assert summary["val"][key] == single[key], key
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    assert sorted(p.name for p in scratch.iterdir()) == [
        "rank0.pt",
        "rank1.pt",
    ]  # rank 1 wrote nothing
