"""A training epoch: accumulated micro-batches step like one big batch, in DDP too."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from segexp.models.wrapper import SegmentationModel
from segexp.training.epoch import train_one_epoch
from segexp.training.loggers.fanout import Writers
from tests.conftest import experiment_from_parts, free_port, needs_gloo


def _net() -> SegmentationModel:
    torch.manual_seed(0)
    # No batch statistics: the gradient of a batch is then the mean of its samples' gradients.
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 4, 1))
    return SegmentationModel(net, mean=(120.0,), std=(60.0,))


def _train(
    batches: list, accumulate: int, num_batches: int, wrap=lambda model: model
) -> tuple[nn.Module, int]:
    model = _net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    exp = experiment_from_parts(
        model, nn.CrossEntropyLoss(), optimizer, train_model=wrap(model),
        grad_clip_norm=None, log_every_n_steps=1, accumulate_grad_batches=accumulate,
    )  # fmt: skip
    trained = train_one_epoch(
        exp, batches, Writers({}), epoch=1, global_step=0, num_batches=num_batches
    )
    return model, trained.global_step


def micro_batches(size: int = 4, count: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 255, (size * count, 3, 8, 8), dtype=torch.uint8, generator=generator)
    masks = torch.randint(0, 4, (size * count, 8, 8), generator=generator)
    return [(images[i : i + size], masks[i : i + size]) for i in range(0, size * count, size)]


def test_accumulated_micro_batches_step_like_one_big_batch():
    micro = micro_batches()
    images, masks = torch.cat([b[0] for b in micro]), torch.cat([b[1] for b in micro])
    big = [(images[:8], masks[:8]), (images[8:], masks[8:])]  # 8 and a last batch of 4
    reference, big_steps = _train(big, accumulate=1, num_batches=2)
    # 3 micro-batches of 4, 2 per step: a step of 2 (= the batch of 8), then a step of 1 (= 4)
    accumulated, micro_steps = _train(micro, accumulate=2, num_batches=3)
    assert big_steps == micro_steps == 2
    for want, got in zip(reference.parameters(), accumulated.parameters(), strict=True):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    unaccumulated, _ = _train(micro, accumulate=1, num_batches=3)  # the test can fail
    assert not torch.allclose(next(unaccumulated.parameters()), next(reference.parameters()))


def _accumulation_worker(rank: int, world: int, port: int, out: str) -> None:
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
    from torch.nn.parallel import DistributedDataParallel

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


@pytest.mark.slow
@needs_gloo
def test_ddp_accumulation_all_reduces_once_per_optimizer_step(tmp_path):
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
