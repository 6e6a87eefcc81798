"""The one evaluation loop: validation each epoch, the final test pass and ``segexp.evaluate``.

Batches are lists of (uint8 image, mask) pairs (data/collate.py ``list_collate``): images of one
size are stacked and go through the inference pipeline together, never padded by their batch,
so an image's prediction is the same in any batch and in ``segexp.predict``. Predictions are
scored against the masks as given: at the labels' own resolution when the dataset is
``EvaluationSamples``, after the evaluation transform when the transform was applied to both.

With a post-processor, the predictions fill ``metrics`` as they come from the model and, after
post-processing, ``post_metrics``: one pass gives both, side by side. ``calibration`` takes the
model's own probabilities (post-processing changes labels, not confidences).
"""

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from segexp.evaluation.pipeline import InferenceOptions, at_size, scores, to_probabilities
from segexp.metrics.calibration import Calibration
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
class Scoring:
    """What one pass fills besides ``metrics`` (the model's own predictions, scored)."""

    metrics: SplitMetrics | ConfusionMatrix
    loss_fn: nn.Module | None = None  # the mean loss (plain whole-image inference only)
    # postprocess: its predictions are scored in ``post_metrics`` too, side by side
    postprocess: PostProcess | None = None
    on_sample: SampleHook | None = None
    # expected calibration error of the model's probabilities, per image and over the split
    calibration: Calibration | None = None
    # [image, target, prediction] of these samples (indices in the loader's order), for a grid
    preview: Sequence[int] = ()
    post_metrics: SplitMetrics | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.postprocess is not None:
            self.post_metrics = self.metrics.empty_like()

    @property
    def final(self) -> SplitMetrics | ConfusionMatrix:
        """The metrics of the predictions a pass ends with (post-processed when it is)."""
        return self.metrics if self.post_metrics is None else self.post_metrics

    def filled(self) -> list:
        return [m for m in (self.metrics, self.post_metrics, self.calibration) if m is not None]


def preview_indices(count: int, total: int) -> list[int]:
    """``count`` indices spread evenly over ``total`` samples: the middle of each of ``count``
    equal parts. A split of consecutive video frames shows its whole length rather than its
    first moment, and the same samples every epoch."""
    count = min(count, total)
    return [(2 * k + 1) * total // (2 * count) for k in range(count)]


@dataclass
class Evaluation:
    """What a pass returns besides the metrics it filled."""

    loss: float | None  # mean loss over the batches; None without a loss function or logits
    preview: list[torch.Tensor] = field(default_factory=list)  # [images, targets, predictions]


@dataclass
class ScoredGroup:
    """Images of one size: each one's prediction and scores at its target's size."""

    predictions: list[torch.Tensor]  # (H, W) class maps
    scores: list[torch.Tensor]  # (classes, H, W): logits, or probabilities with tiles / TTA


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


def score_at_model_size(out: torch.Tensor, targets: torch.Tensor, metrics) -> ScoredGroup:
    """Targets at the size the model answered at (validation): one update for the group."""
    predictions = out.argmax(dim=1)
    metrics.update(predictions, targets)
    return ScoredGroup(list(predictions), list(out))


def score_at_label_sizes(
    out: torch.Tensor, targets: list[torch.Tensor], metrics, options: InferenceOptions
) -> ScoredGroup:
    """Targets at their own sizes (the test pass, evaluate): scores mapped to each one first."""
    scores_at = [at_size(out[k : k + 1], t.shape, options)[0] for k, t in enumerate(targets)]
    predictions = [s.argmax(dim=0) for s in scores_at]
    for prediction, target in zip(predictions, targets, strict=True):
        metrics.update(prediction, target)
    return ScoredGroup(predictions, scores_at)


def _postprocessed(
    scored: ScoredGroup, scoring: Scoring, images: list, targets: list, options
) -> ScoredGroup:
    predictions = [
        scoring.postprocess(
            scored.predictions[k],
            to_probabilities(scored.scores[k][None], options)[0],
            _image_at(image, target.shape),
        )
        for k, (image, target) in enumerate(zip(images, targets, strict=True))
    ]
    for prediction, target in zip(predictions, targets, strict=True):
        scoring.post_metrics.update(prediction, target)
    return ScoredGroup(predictions, scored.scores)


def _score_group(
    model: nn.Module,
    images: list[torch.Tensor],
    targets: list[torch.Tensor],
    dev: Device,
    scoring: Scoring,
    options: InferenceOptions,
) -> tuple[ScoredGroup, torch.Tensor | None]:
    """Images of one size through the inference pipeline, scored; and their loss when the
    targets are at the model's size and inference is a plain pass."""
    label_sizes = {tuple(t.shape) for t in targets}
    # Multi-scale TTA averages at the labels' size when the group shares one.
    size = next(iter(label_sizes)) if len(label_sizes) == 1 else None
    with dev.autocast():
        out = scores(model, dev.images(torch.stack(images)), options, size=size)
    loss = None
    if label_sizes == {tuple(out.shape[-2:])}:
        stacked = torch.stack(targets)
        scored = score_at_model_size(out, stacked, scoring.metrics)
        if scoring.loss_fn is not None and options.plain:
            with dev.autocast():
                loss = scoring.loss_fn(out, stacked).float()
    else:
        scored = score_at_label_sizes(out, targets, scoring.metrics, options)
    if scoring.postprocess is not None:
        scored = _postprocessed(scored, scoring, images, targets, options)
    return scored, loss


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    batches: Iterable,
    dev: Device,
    scoring: Scoring,
    *,
    num_batches: int,
    options: InferenceOptions | None = None,
    desc: str = "val",
) -> Evaluation:
    """Fills ``scoring``'s metrics over the whole split (``num_batches`` batches), all-reduced
    across processes."""
    options = options or InferenceOptions()
    model.eval()
    for m in scoring.filled():
        m.reset()
    loss_sum = torch.zeros((), device=dev.device)
    loss_terms = index = 0
    wanted = set(scoring.preview)
    preview: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    bar = tqdm(
        batches, total=num_batches, desc=desc, leave=False, disable=not distributed.is_main()
    )
    for step, (images, masks) in enumerate(interrupt.until_stopped(bar), start=1):
        for group in _groups_by_size(images):
            group_images = [images[i] for i in group]
            targets = [masks[i].to(dev.device, non_blocking=True).long() for i in group]
            scored, loss = _score_group(model, group_images, targets, dev, scoring, options)
            if loss is not None:
                loss_sum += loss
                loss_terms += 1
            for k, (i, target) in enumerate(zip(group, targets, strict=True)):
                if scoring.on_sample is not None:
                    scoring.on_sample(index + i, scored.predictions[k], target)
                if scoring.calibration is not None:
                    probabilities = to_probabilities(scored.scores[k][None], options)[0]
                    scoring.calibration.update(probabilities, target)
                if index + i in wanted:
                    preview[index + i] = (images[i], target, scored.predictions[k])
        index += len(images)
        if step >= num_batches:
            break
    interrupt.check()  # SIGINT/SIGTERM: stop after the batch in flight, score nothing partial
    for m in scoring.filled():
        m.all_reduce()
    loss = None
    if scoring.loss_fn is not None and options.plain:  # every rank joins the all-reduce
        mean = distributed.mean_over_ranks(loss_sum, loss_terms)
        loss = mean if loss_terms else None
    return Evaluation(loss, _stack_preview([preview[i] for i in sorted(preview)]))


def _stack_preview(samples: list) -> list[torch.Tensor]:
    """[images, targets, predictions] at the first target's size (images resized to it), in
    the loader's order."""
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
