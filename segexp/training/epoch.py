"""One training epoch, in the style of torchvision's references (evaluation: evaluation/loop.py)."""

import contextlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from segexp.errors import SegexpError
from segexp.runtime import distributed
from segexp.training.experiment import Experiment


@dataclass
class TrainedEpoch:
    loss: float  # mean training loss of the epoch's batches
    images: int  # images seen
    global_step: int  # optimizer steps since the run began, after this epoch


def train_one_epoch(
    exp: Experiment,
    batches: Iterable,
    writer,
    *,
    epoch: int,
    global_step: int,
    num_batches: int,
    stop: Callable[[int], bool] | None = None,
) -> TrainedEpoch:
    """``num_batches`` batches of ``exp``'s training, as its trainer settings say; reads the loss
    on the host only to log it (every ``trainer.log_every_n_steps`` optimizer steps).

    ``trainer.accumulate_grad_batches`` micro-batches make one optimizer step (``global_step``
    counts optimizer steps): each loss is divided by the number of micro-batches in its step, so
    N batches of B give the gradient of one batch of N*B for a loss that averages over the batch.
    A step never spans two epochs (the last one of an epoch may have fewer micro-batches), so
    checkpoints at epoch ends stay exact resume points. The EMA of the weights (``exp.ema``) is
    updated after each optimizer step; ``exp.device_aug`` augments uint8 batches on the device.
    ``stop(global_step)``, after each optimizer step: true ends the epoch there (the run's length
    in steps or its time budget: training/budget.py).
    """
    model, dev, scaler = exp.train_model, exp.dev, exp.scaler
    accumulate, log_every = exp.trainer.accumulate_grad_batches, exp.trainer.log_every_n_steps
    model.train()
    epoch_loss, window_loss = MeanLoss(dev.device), MeanLoss(dev.device)
    steps = images_seen = 0
    progress = tqdm(
        batches,
        total=num_batches,
        desc=f"epoch {epoch} train",
        leave=False,
        disable=not distributed.is_main(),
    )
    exp.optimizer.zero_grad(set_to_none=True)
    for index, (images, masks) in enumerate(progress):
        first = index - index % accumulate  # this step's first micro-batch
        in_step = min(accumulate, num_batches - first)
        last = index == first + in_step - 1
        images, masks = dev.batch(images, masks)
        if exp.device_aug is not None:
            images = exp.device_aug(images)
        with _sync_gradients(model, last):
            with dev.autocast():
                loss = exp.loss_fn(model(images), masks)
            scaler.scale(loss / in_step if in_step > 1 else loss).backward()
        if last:
            _optimizer_step(exp)
            global_step += 1
            if exp.ema is not None:
                exp.ema.update()
        for meter in (epoch_loss, window_loss):
            meter.add(loss.detach().float(), skippable=scaler.is_enabled())
        steps += 1
        images_seen += images.shape[0]
        if last and global_step % log_every == 0:
            logged = window_loss.pop()
            check_finite(logged, epoch, global_step, exp.optimizer)
            writer.add_scalar("train/loss", logged, global_step)
            writer.add_scalar("train/lr", exp.optimizer.param_groups[0]["lr"], global_step)
            progress.set_postfix(loss=f"{logged:.4f}")
        # ``stop`` sees every optimizer step, the epoch's last included: a budget's decisions
        # then fall on the same steps in a run and in its replay (trainer.max_steps).
        if (last and stop is not None and stop(global_step)) or steps >= num_batches:
            break
    mean_loss = epoch_loss.pop() if steps else 0.0
    check_finite(mean_loss, epoch, global_step, exp.optimizer)
    return TrainedEpoch(mean_loss, images_seen, global_step)


def _sync_gradients(model: nn.Module, last: bool):
    """DDP all-reduces gradients only on a step's last micro-batch (``no_sync`` before it);
    forward and backward both run inside it, as DDP requires."""
    no_sync = getattr(model, "no_sync", None)
    return contextlib.nullcontext() if last or no_sync is None else no_sync()


def _optimizer_step(exp: Experiment) -> None:
    optimizer, scaler, clip = exp.optimizer, exp.scaler, exp.trainer.grad_clip_norm
    if clip:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(exp.train_model.parameters(), clip)
    scaler.step(optimizer)
    scaler.update()
    exp.scheduler.step()
    optimizer.zero_grad(set_to_none=True)


class MeanLoss:
    """A mean of batch losses kept on the device: the host reads it only when it is popped."""

    def __init__(self, device: torch.device) -> None:
        self.total = torch.zeros((), device=device)
        self.count = torch.zeros((), device=device)

    def add(self, loss: torch.Tensor, skippable: bool) -> None:
        """``skippable``: under an fp16 GradScaler a non-finite loss is left out, since the
        scaler skips that step and lowers its scale, which is routine, not a failure."""
        if skippable:
            finite = torch.isfinite(loss)
            self.total += torch.where(finite, loss, torch.zeros_like(loss))
            self.count += finite.float()
        else:
            self.total += loss
            self.count += 1

    def pop(self) -> float:
        """The mean so far, then empty; NaN when every step was skipped: then training has
        diverged even for the scaler."""
        n = self.count.item()
        mean = self.total.item() / n if n else float("nan")
        self.total.zero_()
        self.count.zero_()
        return mean


def check_finite(loss: float, epoch: int, step: int, optimizer: torch.optim.Optimizer) -> None:
    if not math.isfinite(loss):
        lr = optimizer.param_groups[0]["lr"]
        raise SegexpError(
            f"non-finite loss ({loss}) at epoch {epoch}, step {step}, lr {lr:.3g}: "
            "lower optimizer.lr, keep trainer.grad_clip_norm set, or try trainer.precision=fp32 "
            "(trainer.detect_anomaly=true names the operation that produced it)"
        )
