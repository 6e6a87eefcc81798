"""The one evaluation loop: validation each epoch, the final test pass and ``segexp.evaluate``.

Batches are lists of (uint8 image, mask) pairs (data/collate.py ``list_collate``): images of one
size are stacked and go through the inference pipeline together, never padded by their batch,
so an image's prediction is the same in any batch and in ``segexp.predict``. Predictions are
scored against the masks as given: at the labels' own resolution when the dataset is
``EvaluationSamples``, after the evaluation transform when the transform was applied to both.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from segexp.evaluation.pipeline import InferenceOptions, at_size, scores
from segexp.metrics.confusion import ConfusionMatrix
from segexp.runtime import distributed, interrupt
from segexp.runtime.device import Device

# on_sample(index in the loader's order, prediction (H, W), target (H, W)), both on the device
SampleHook = Callable[[int, torch.Tensor, torch.Tensor], None]


@dataclass
class Evaluation:
    """What a pass returns besides the confusion matrix it filled."""

    loss: float | None  # mean loss over the batches; None without a loss function or logits
    preview: list[torch.Tensor] = field(default_factory=list)  # [images, targets, predictions]


def _groups_by_size(images: list[torch.Tensor]) -> list[list[int]]:
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, image in enumerate(images):
        groups[tuple(image.shape[-2:])].append(i)
    return list(groups.values())


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    batches: Iterable,
    dev: Device,
    confusion: ConfusionMatrix,
    *,
    num_batches: int,
    options: InferenceOptions | None = None,
    loss_fn: nn.Module | None = None,
    desc: str = "val",
    num_preview: int = 0,
    on_sample: SampleHook | None = None,
) -> Evaluation:
    """Fills ``confusion`` over the whole split (all-reduced across processes)."""
    options = options or InferenceOptions()
    model.eval()
    confusion.reset()
    loss_sum = torch.zeros((), device=dev.device)
    loss_terms = 0
    index = 0
    preview: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    bar = tqdm(
        batches, total=num_batches, desc=desc, leave=False, disable=not distributed.is_main()
    )
    for step, (images, masks) in enumerate(interrupt.until_stopped(bar), start=1):
        for group in _groups_by_size(images):
            x = dev.images(torch.stack([images[i] for i in group]))
            with dev.autocast():
                out = scores(model, x, options)
            targets = [masks[i].to(dev.device, non_blocking=True).long() for i in group]
            at_label_size = all(t.shape == x.shape[-2:] for t in targets)
            if at_label_size:
                stacked = torch.stack(targets)
                predictions = out.argmax(dim=1)
                confusion.update(predictions, stacked)
                if loss_fn is not None and options.plain:
                    with dev.autocast():
                        loss_sum += loss_fn(out, stacked).float()
                    loss_terms += 1
            else:
                predictions = [
                    at_size(out[k : k + 1], t.shape, options).argmax(dim=1)[0]
                    for k, t in enumerate(targets)
                ]
                for prediction, target in zip(predictions, targets, strict=True):
                    confusion.update(prediction, target)
            for k, (i, target) in enumerate(zip(group, targets, strict=True)):
                if on_sample is not None:
                    on_sample(index + i, predictions[k], target)
                if len(preview) < num_preview:
                    preview.append((images[i], target, predictions[k]))
        index += len(images)
        if step >= num_batches:
            break
    interrupt.check()  # SIGINT/SIGTERM: stop after the batch in flight, score nothing partial
    confusion.all_reduce()
    loss = None
    if loss_fn is not None and options.plain:  # every rank joins the all-reduce
        mean = distributed.mean_over_ranks(loss_sum, loss_terms)
        loss = mean if loss_terms else None
    return Evaluation(loss, _stack_preview(preview))


def _stack_preview(samples: list) -> list[torch.Tensor]:
    """[images, targets, predictions] at the first target's size (images resized to it)."""
    if not samples:
        return []
    size = tuple(samples[0][1].shape)
    same = [s for s in samples if tuple(s[1].shape) == size]
    images = [
        image
        if tuple(image.shape[-2:]) == size
        else F.interpolate(image[None].float(), size=size, mode="bilinear")[0].round().byte()
        for image, _, _ in same
    ]
    return [
        torch.stack([i.cpu() for i in images]),
        torch.stack([t.cpu() for _, t, _ in same]),
        torch.stack([p.cpu() for _, _, p in same]),
    ]
