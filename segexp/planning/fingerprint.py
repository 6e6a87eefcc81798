"""A dataset's fingerprint (nnU-Net's word): the numbers a plan decides from, read by the survey
the label audit prints (data/survey.py), never by a second reader."""

import copy
import statistics
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from PIL import Image

from segexp.config.build import build, class_names
from segexp.data.scan import VOID_NAMES, VOID_SHARE, class_widths, void_candidate
from segexp.data.survey import survey
from segexp.errors import SegexpError


@dataclass
class Fingerprint:
    images: dict[str, int]  # samples per split
    median_hw: tuple[int, int]  # of the training images, as stored
    class_shares: list[float]  # of the labelled training pixels
    class_widths: list[float | None]  # typical width in pixels, as stored (scan.class_widths)
    ignore_index: int  # the void label's value (given, or read from the masks)
    void_share: float | None  # of the training pixels, when the void label was read here
    mean: list[float]
    std: list[float]
    palette: list[list[int]] | None  # from palette PNG masks

    def resized(self, scale: float) -> tuple[int, int]:
        return (round(self.median_hw[0] * scale), round(self.median_hw[1] * scale))


def _median_size(image_sizes: dict[str, int]) -> tuple[int, int]:
    """Median height and width over the images ("WxH": count, as the scan counts them)."""
    heights, widths = [], []
    for size, count in image_sizes.items():
        width, height = (int(v) for v in size.split("x"))
        heights += [height] * count
        widths += [width] * count
    return int(statistics.median(heights)), int(statistics.median(widths))


def _void_reading(report: dict[str, Any], cfg: DictConfig) -> tuple[int, float] | None:
    """A value right above the classes that reads as void (rare or named so), with its share."""
    train = report["splits"].get("train")
    if train is None:
        return None
    num_classes = int(cfg.dataset.num_classes)
    values = train["mask_values"]
    bad = sorted(v for v in values if v >= num_classes and v != int(cfg.dataset.ignore_index))
    candidate = void_candidate(bad, num_classes)
    if candidate is None:
        return None
    share = values[candidate] / max(1, sum(values.values()))
    named = any(VOID_NAMES.search(str(n)) for n in class_names(cfg.dataset))
    return (candidate, share) if share < VOID_SHARE or named else None


def _palette(cfg: DictConfig) -> list[list[int]] | None:
    """The colours of palette PNG masks (what an annotation tool saved), one per class."""
    dataset = cfg.dataset
    if dataset.get("palette") is not None:
        return OmegaConf.to_container(dataset.palette)
    pairs = getattr(build(dataset.train), "pairs", None)
    if not pairs:
        return None
    with Image.open(pairs[0][1]) as mask:
        if mask.mode != "P" or mask.getpalette() is None:
            return None
        flat = mask.getpalette()[: 3 * int(dataset.num_classes)]
    return [flat[i : i + 3] for i in range(0, len(flat), 3)]


def fingerprint(cfg: DictConfig) -> tuple[Fingerprint, DictConfig]:
    """The dataset's fingerprint, and its config with the void label read from the masks (when
    masks hold one value right above the classes that reads as void). A dataset the audit finds
    fatal problems in is refused with the audit's lines."""
    report = survey(cfg)
    void = None
    if report["fatal"]:
        void = _void_reading(report, cfg)
        if void is not None:
            cfg = copy.deepcopy(cfg)
            cfg.dataset.ignore_index = void[0]
            report = survey(cfg)
    if report["fatal"]:
        raise SegexpError(
            "the label audit found problems, so there is no plan: "
            + " | ".join(report["fatal"])
            + " (python -m segexp.audit shows them in full)"
        )
    train = report["splits"].get("train")
    if not train or not train["samples"]:
        raise SegexpError("the dataset has no train split to plan from: check dataset.train")
    labelled = sum(train["class_pixels"]) or 1
    found = Fingerprint(
        images={split: scan["samples"] for split, scan in report["splits"].items()},
        median_hw=_median_size(train["image_sizes"]),
        class_shares=[p / labelled for p in train["class_pixels"]],
        class_widths=class_widths(train["class_pixels"], train["outline_pixels"]),
        ignore_index=int(cfg.dataset.ignore_index),
        void_share=None if void is None else void[1],
        mean=report["suggested_mean"],
        std=report["suggested_std"],
        palette=_palette(cfg),
    )
    return found, cfg
