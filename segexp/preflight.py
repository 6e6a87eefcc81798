"""The label check every run does before its first step: a fast version of `segexp.audit`.

It reads every mask and every image header (not the image pixels) of the file-based splits and
refuses to train on missing, unreadable or mismatched files and on mask values outside the
classes. Generated datasets (synthetic) have no files and are not scanned.
"""

import logging

from omegaconf import DictConfig

from segexp.config import build
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


def preflight(cfg: DictConfig) -> dict:
    """Raise one SegexpError listing every fatal problem; log warnings. Returns the scans."""
    num_classes, ignore_index = int(cfg.dataset.num_classes), int(cfg.dataset.ignore_index)
    fatal, scans, seen = [], {}, []
    for split, dataset in split_datasets(cfg).items():
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
        raise SegexpError(
            f"label check failed for dataset '{cfg.dataset.name}': "
            + " | ".join(fatal)
            + f" (full report: python -m segexp.audit dataset={cfg.dataset.name} ...)"
        )
    return scans
