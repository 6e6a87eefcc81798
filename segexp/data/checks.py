"""The label check: one validation layer for every entry point that reads labelled files.

Training runs it before its first step (a fast version of `segexp.audit`, which reports the
same findings in full), and `segexp.evaluate` runs it on the split or folder it scores.

It reads every mask and every image header (not the image pixels) of the file-based splits and
refuses to train on missing, unreadable or mismatched files and on mask values outside the
classes. Generated datasets (synthetic) have no files and are not scanned.
"""

import logging

from omegaconf import DictConfig

from segexp.config.build import build
from segexp.data.layout import SPLITS
from segexp.data.scan import findings, scan_split
from segexp.errors import SegexpError

log = logging.getLogger(__name__)


def split_datasets(cfg: DictConfig) -> dict:
    """The splits' datasets without transforms; a split configured as another's is built once."""
    built: dict = {}
    for split in SPLITS:
        if cfg.dataset.get(split) is not None:
            node = cfg.dataset[split]
            # The check reads files itself: no need to fill a cache that training rebuilds.
            built[split] = build(node, cache=False) if "cache" in node else build(node)
    return built


def check_datasets(
    datasets: dict, num_classes: int, ignore_index: int, source: str, report_hint: str = ""
) -> dict:
    """The label check of file-based datasets (by split name): one SegexpError listing every
    fatal problem, warnings logged; returns the scans. ``source`` names the data in the error."""
    fatal, scans, seen = [], {}, []
    for split, dataset in datasets.items():
        pairs = getattr(dataset, "pairs", None)
        if pairs is None or pairs in seen:
            continue
        seen.append(pairs)
        scans[split] = scan_split(dataset, split, num_classes, images="header")
        problems, warnings = findings(scans[split], num_classes, ignore_index)
        fatal += problems
        for warning in warnings:
            log.warning("label check: %s", warning)
    if fatal:
        raise SegexpError(f"label check failed for {source}: " + " | ".join(fatal) + report_hint)
    return scans


def preflight(cfg: DictConfig) -> dict:
    """Every configured split's label check, before training (or evaluating) on it."""
    name = cfg.dataset.name
    return check_datasets(
        split_datasets(cfg),
        int(cfg.dataset.num_classes),
        int(cfg.dataset.ignore_index),
        f"dataset '{name}'",
        f" (full report: python -m segexp.audit dataset={name} ...)",
    )
