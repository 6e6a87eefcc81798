"""The label check: one validation layer for every entry point that reads labelled files.

Training runs it before its first step (a fast version of `segexp.audit`, which reports the
same findings in full), and `segexp.evaluate` runs it on the split or folder it scores.

It reads every mask and every image header (not the image pixels) of the file-based splits and
refuses to train on missing, unreadable or mismatched files and on mask values outside the
classes. Generated datasets (synthetic) have no files and are not scanned.
"""

import hashlib
import json
import logging
from pathlib import Path

from omegaconf import DictConfig

from segexp.config.build import build, class_names
from segexp.data.class_weights import cache_dir
from segexp.data.layout import SPLITS
from segexp.data.scan import findings, scan_split
from segexp.errors import SegexpError
from segexp.storage.files import write_json

# Bump when the check itself changes, so that earlier cached passes are not trusted.
CHECK_VERSION = 1

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
    datasets: dict,
    num_classes: int,
    ignore_index: int,
    source: str,
    report_hint: str = "",
    names: list[str] | None = None,
) -> dict:
    """The label check of file-based datasets (by split name): one SegexpError listing every
    fatal problem, warnings logged; returns the scans. ``source`` names the data in the error;
    ``names``: the class names as configured (scan.py ``findings``)."""
    fatal, scans, seen = [], {}, []
    for split, dataset in datasets.items():
        pairs = getattr(dataset, "pairs", None)
        if pairs is None or pairs in seen:
            continue
        seen.append(pairs)
        scans[split] = scan_split(dataset, split, num_classes, images="header")
        problems, warnings = findings(scans[split], num_classes, ignore_index, names)
        fatal += problems
        for warning in warnings:
            log.warning("label check: %s", warning)
    if fatal:
        raise SegexpError(f"label check failed for {source}: " + " | ".join(fatal) + report_hint)
    return scans


def preflight(cfg: DictConfig) -> dict:
    """Every configured split's label check, before training (or evaluating) on it.

    A pass is remembered in the cache folder (class_weights.cache_dir) under a key made of the
    file list, sizes and modification times, the class count and ignore_index: the next run on
    the same unchanged files skips re-reading every mask and repeats the warnings only.
    Returns the scans ({} when the cached pass was used)."""
    name = cfg.dataset.name
    datasets = split_datasets(cfg)
    num_classes, ignore_index = int(cfg.dataset.num_classes), int(cfg.dataset.ignore_index)
    marker = _pass_marker(datasets, num_classes, ignore_index)
    if marker is not None and marker.is_file():
        for warning in json.loads(marker.read_text())["warnings"]:
            log.warning("label check: %s", warning)
        log.info("label check: passed before on these unchanged files (%s)", marker)
        return {}
    scans = check_datasets(
        datasets,
        num_classes,
        ignore_index,
        f"dataset '{name}'",
        f" (full report: python -m segexp.audit dataset={name} ...)",
        class_names(cfg.dataset),
    )
    if marker is not None:
        warnings = [
            w for scan in scans.values() for w in findings(scan, num_classes, ignore_index)[1]
        ]
        marker.parent.mkdir(parents=True, exist_ok=True)
        write_json({"warnings": warnings}, marker)
    return scans


def _pass_marker(datasets: dict, num_classes: int, ignore_index: int) -> Path | None:
    """Where a pass on exactly these files is recorded; None without files (synthetic)."""
    files = []
    for split, dataset in sorted(datasets.items()):
        for pair in getattr(dataset, "pairs", None) or []:
            for path in map(Path, pair):
                stat = path.stat() if path.is_file() else None
                files.append(
                    [split, str(path.resolve()), stat and stat.st_size, stat and stat.st_mtime_ns]
                )
    if not files:
        return None
    key = json.dumps([CHECK_VERSION, num_classes, ignore_index, files]).encode()
    return cache_dir() / "label_checks" / f"{hashlib.sha1(key).hexdigest()[:20]}.json"
