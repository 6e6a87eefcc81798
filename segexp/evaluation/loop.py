"""The one evaluation loop: validation each epoch, the final test pass and ``segexp.evaluate``.

Batches are lists of (uint8 image, mask) pairs (data/collate.py ``list_collate``): images of one
size are stacked and go through the inference pipeline together, never padded by their batch,
so an image's prediction is the same in any batch and in ``segexp.predict``. Predictions are
scored against the masks as given: at the labels' own resolution when the dataset is
``EvaluationSamples``, after the evaluation transform when the transform was applied to both.

With a post-processor, the predictions fill ``metrics`` as they come from the model and, after
post-processing, ``post_metrics``: one pass gives both, side by side.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from segexp.evaluation.pipeline import InferenceOptions, at_size, scores, to_probabilities
from segexp.metrics.confusion import ConfusionMatrix
from segexp.metrics.split import SplitMetrics
from segexp.runtime import distributed, interrupt
from segexp.runtime.device import Device

# on_sample(index in the loader's order, prediction (H, W), target (H, W)), both on the device;
# the prediction is the post-processed one when there is a post-processor.
SampleHook = Callable[[int, torch.Tensor, torch.Tensor], None]
# postprocess(prediction (H, W), probabilities (classes, H, W), image (channels, H, W) uint8),
# all at the target's size -> new prediction (H, W)
PostProcess = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


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


def _image_at(image: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    resized = F.interpolate(image[None].float(), size=tuple(size), mode="bilinear")
    return resized[0].round().clamp(0, 255).byte()


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    batches: Iterable,
    dev: Device,
    metrics: SplitMetrics | ConfusionMatrix,
    *,
    num_batches: int,
    options: InferenceOptions | None = None,
    loss_fn: nn.Module | None = None,
    desc: str = "val",
    num_preview: int = 0,
    on_sample: SampleHook | None = None,
    postprocess: PostProcess | None = None,
    post_metrics: SplitMetrics | ConfusionMatrix | None = None,
) -> Evaluation:
    """Fills ``metrics`` (and ``post_metrics`` with ``postprocess``) over the whole split,
    all-reduced across processes."""
    options = options or InferenceOptions()
    model.eval()
    filled = [metrics] if postprocess is None else [metrics, post_metrics]
    if any(m is None for m in filled):
        raise ValueError("postprocess needs post_metrics to fill")
    for m in filled:
        m.reset()
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
            targets = [masks[i].to(dev.device, non_blocking=True).long() for i in group]
            label_sizes = {tuple(t.shape) for t in targets}
            # Multi-scale TTA averages at the labels' size when the group shares one.
            size = next(iter(label_sizes)) if len(label_sizes) == 1 else None
            with dev.autocast():
                out = scores(model, x, options, size=size)
            if all(t.shape == out.shape[-2:] for t in targets):
                stacked = torch.stack(targets)
                predictions = out.argmax(dim=1)
                metrics.update(predictions, stacked)
                label_scores = list(out)
                if loss_fn is not None and options.plain:
                    with dev.autocast():
                        loss_sum += loss_fn(out, stacked).float()
                    loss_terms += 1
            else:
                label_scores = [
                    at_size(out[k : k + 1], t.shape, options)[0] for k, t in enumerate(targets)
                ]
                predictions = [s.argmax(dim=0) for s in label_scores]
                for prediction, target in zip(predictions, targets, strict=True):
                    metrics.update(prediction, target)
            if postprocess is not None:
                predictions = [
                    postprocess(
                        predictions[k],
                        to_probabilities(label_scores[k][None], options)[0],
                        _image_at(images[i], targets[k].shape),
                    )
                    for k, i in enumerate(group)
                ]
                for prediction, target in zip(predictions, targets, strict=True):
                    post_metrics.update(prediction, target)
            for k, (i, target) in enumerate(zip(group, targets, strict=True)):
                if on_sample is not None:
                    on_sample(index + i, predictions[k], target)
                if len(preview) < num_preview:
                    preview.append((images[i], target, predictions[k]))
        index += len(images)
        if step >= num_batches:
            break
    interrupt.check()  # SIGINT/SIGTERM: stop after the batch in flight, score nothing partial
    for m in filled:
        m.all_reduce()
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
    images = [_image_at(image, size) for image, _, _ in same]
    return [
        torch.stack([i.cpu() for i in images]),
        torch.stack([t.cpu() for _, t, _ in same]),
        torch.stack([p.cpu() for _, _, p in same]),
    ]
