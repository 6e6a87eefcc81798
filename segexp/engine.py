"""One training epoch and one evaluation pass, in the style of torchvision's references."""

import contextlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from segexp import distributed
from segexp.errors import SegexpError
from segexp.metrics import ConfusionMatrix


@dataclass
class Device:
    """Where and how tensors are computed: device, autocast dtype, memory format, normalisation."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    mean: torch.Tensor  # (1, C, 1, 1) on the device, 0-255 scale
    std: torch.Tensor

    def batch(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images and integer masks from the loader -> normalised float images, long masks."""
        images = images.to(self.device, non_blocking=True)
        masks = masks.to(self.device, non_blocking=True).long()
        images = (images.float() - self.mean) / self.std
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, masks

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)


def train_one_epoch(
    model: nn.Module,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    batches: Iterable,
    dev: Device,
    writer,
    *,
    epoch: int,
    global_step: int,
    grad_clip_norm: float | None,
    log_every_n_steps: int,
    num_batches: int,
) -> tuple[float, int, int]:
    """Returns (mean loss, images seen, global step); reads the loss on the host only to log it."""
    model.train()
    loss_sum = torch.zeros((), device=dev.device)
    window_sum = torch.zeros((), device=dev.device)
    loss_count = torch.zeros((), device=dev.device)
    window_count = torch.zeros((), device=dev.device)
    steps = images_seen = 0
    progress = tqdm(
        batches,
        total=num_batches,
        desc=f"epoch {epoch} train",
        leave=False,
        disable=not distributed.is_main(),
    )
    for images, masks in progress:
        images, masks = dev.batch(images, masks)
        with dev.autocast():
            loss = loss_fn(model(images), masks)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if grad_clip_norm:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip_norm)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        step_loss, counted = _countable(loss.detach().float(), scaler.is_enabled())
        loss_sum += step_loss
        window_sum += step_loss
        loss_count += counted
        window_count += counted
        steps += 1
        images_seen += images.shape[0]
        global_step += 1
        if global_step % log_every_n_steps == 0:
            window_loss = _mean(window_sum, window_count)
            check_finite(window_loss, epoch, global_step, optimizer)
            writer.add_scalar("train/loss", window_loss, global_step)
            writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], global_step)
            progress.set_postfix(loss=f"{window_loss:.4f}")
            window_sum.zero_()
            window_count.zero_()
        if steps >= num_batches:
            break
    mean_loss = _mean(loss_sum, loss_count) if steps else 0.0
    check_finite(mean_loss, epoch, global_step, optimizer)
    return mean_loss, images_seen, global_step


def _countable(loss: torch.Tensor, scaler_enabled: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, 1), or under an fp16 GradScaler (0, 0) for a non-finite loss: the scaler skips
    that step and lowers its scale, which is routine, not a failure. Stays on the device."""
    if not scaler_enabled:
        return loss, torch.ones((), device=loss.device)
    finite = torch.isfinite(loss)
    return torch.where(finite, loss, torch.zeros_like(loss)), finite.float()


def _mean(total: torch.Tensor, count: torch.Tensor) -> float:
    """NaN when every step was skipped: then training has diverged even for the scaler."""
    n = count.item()
    return total.item() / n if n else float("nan")


def check_finite(loss: float, epoch: int, step: int, optimizer: torch.optim.Optimizer) -> None:
    if not math.isfinite(loss):
        lr = optimizer.param_groups[0]["lr"]
        raise SegexpError(
            f"non-finite loss ({loss}) at epoch {epoch}, step {step}, lr {lr:.3g}: "
            "lower optimizer.lr, keep trainer.grad_clip_norm set, or try trainer.precision=fp32 "
            "(trainer.detect_anomaly=true names the operation that produced it)"
        )


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loss_fn: nn.Module,
    batches: Iterable,
    dev: Device,
    confusion: ConfusionMatrix,
    *,
    num_batches: int,
    desc: str = "val",
    num_preview: int = 0,
    on_batch: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
) -> tuple[float, list[torch.Tensor]]:
    """Accumulates ``confusion`` over the whole split; returns (mean loss, preview tensors).

    The preview is (uint8 images, targets, predictions) of the first ``num_preview`` samples.
    ``on_batch(predictions, masks)`` sees every batch (e.g. per-image scores).
    """
    model.eval()
    confusion.reset()
    loss_sum = torch.zeros((), device=dev.device)
    steps = 0
    preview: list[torch.Tensor] = []
    bar = tqdm(
        batches, total=num_batches, desc=desc, leave=False, disable=not distributed.is_main()
    )
    for raw_images, raw_masks in bar:
        images, masks = dev.batch(raw_images, raw_masks)
        with dev.autocast():
            logits = model(images)
            loss_sum += loss_fn(logits, masks).float()
        predictions = logits.argmax(dim=1)
        confusion.update(predictions, masks)
        if on_batch is not None:
            on_batch(predictions, masks)
        if not preview and num_preview:
            preview = [raw_images[:num_preview], raw_masks[:num_preview], predictions[:num_preview]]
        steps += 1
        if steps >= num_batches:
            break
    confusion.all_reduce()
    return distributed.mean_over_ranks(loss_sum, steps), preview
