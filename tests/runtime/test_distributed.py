"""Two CPU processes with the gloo backend against one process: samplers, metrics, helpers."""

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
from tests.conftest import DISTRIBUTED_RUN, compose_config, free_port, needs_gloo


def val_confusion() -> tuple[ConfusionMatrix, object]:
    """A fixed model evaluated on the validation split of this process (all of it, or a shard)."""
    cfg = compose_config(DISTRIBUTED_RUN)
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


@pytest.mark.slow
@needs_gloo
def test_all_reduced_confusion_matrix_of_two_gloo_processes_equals_one_process(tmp_path):
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert ranks[0]["shard"] == [0, 2, 4, 6, 8] and ranks[1]["shard"] == [1, 3, 5, 7]
    single, _ = val_confusion()
    assert single.matrix.sum() == 9 * 32 * 32
    for rank in ranks:  # every pixel counted once, on both ranks, with rank 0's BatchNorm
        assert torch.equal(rank["matrix"], single.matrix)


def test_collectives_wait_trainer_distributed_timeout_s_for_the_other_processes(monkeypatch):
    joined = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kw: joined.update(kw))
    distributed.setup(timeout_s=45)
    assert joined["timeout"].total_seconds() == 45


@needs_gloo
def test_a_collective_that_lost_another_process_is_named_as_such(tmp_path):
    lost = RuntimeError(
        "[../gloo/transport/tcp/pair.cc:545] Read error [127.0.0.1]:20881: Connection reset by "
        "peer. This is typically caused by a remote worker hanging"
    )
    assert not distributed.peer_lost(lost)  # outside a process group: not ours to explain
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/group", rank=0, world_size=1)
    try:
        assert distributed.peer_lost(lost)
        assert not distributed.peer_lost(RuntimeError("shape mismatch"))
        assert not distributed.peer_lost(ValueError("connection reset by peer"))
    finally:
        dist.destroy_process_group()
