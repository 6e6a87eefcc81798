"""`class_weights: auto` in a loss config: median-frequency weights of the train split.

Computed once per dataset (its resolved train config and its mask files' sizes and times) and
cached as JSON under $SEGEXP_CACHE_DIR (default ~/.cache/segexp).
"""

import copy
import hashlib
import json
import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from segexp.config.build import build
from segexp.data.scan import median_frequency_weights, scan_split
from segexp.storage.files import write_json

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    return Path(os.environ.get("SEGEXP_CACHE_DIR", Path.home() / ".cache" / "segexp"))


def class_weight_keys(node, prefix: str = "loss", auto_only: bool = False) -> list[str]:
    """Dotted paths of the ``class_weights`` keys under a loss node (only those set to ``auto``
    with ``auto_only``): what a user overrides to weight the classes."""
    keys = []
    if isinstance(node, DictConfig):
        for key in node:
            value = node._get_node(key)
            path = f"{prefix}.{key}"
            if key == "class_weights":
                if not auto_only or (not OmegaConf.is_missing(node, key) and node[key] == "auto"):
                    keys.append(path)
            elif isinstance(value, DictConfig):
                keys += class_weight_keys(value, path, auto_only)
    return keys


def _auto_keys(node, prefix: str) -> list[str]:
    return class_weight_keys(node, prefix, auto_only=True)


def _fingerprint(cfg: DictConfig, dataset) -> str:
    parts = {
        "train": OmegaConf.to_container(cfg.dataset.train, resolve=True),
        "num_classes": int(cfg.dataset.num_classes),
        "files": [
            [str(m), m.stat().st_size, m.stat().st_mtime_ns]
            for _, m in getattr(dataset, "pairs", None) or []
        ],
    }
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def auto_class_weights(cfg: DictConfig) -> list[float]:
    dataset = build(cfg.dataset.train)
    num_classes = int(cfg.dataset.num_classes)
    path = cache_dir() / f"class_weights-{cfg.dataset.name}-{_fingerprint(cfg, dataset)}.json"
    if path.is_file():
        weights = json.loads(path.read_text())["weights"]
        log.info("class weights (median frequency, cached in %s): %s", path, weights)
        return weights
    scan = scan_split(dataset, "train", num_classes, images="none")
    weights = median_frequency_weights(scan["class_pixels"], scan["presence_pixels"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json({"weights": weights, "class_pixels": scan["class_pixels"]}, path)
    log.info("class weights (median frequency over the train masks): %s", weights)
    return weights


def resolve_auto_class_weights(cfg: DictConfig) -> DictConfig:
    """``cfg``, or a copy in which every ``class_weights: auto`` under ``cfg.loss`` is the
    computed list (the given config is never changed)."""
    keys = _auto_keys(cfg.loss, "loss")
    if not keys:
        return cfg
    weights = auto_class_weights(cfg)
    resolved = copy.deepcopy(cfg)
    for key in keys:
        OmegaConf.update(resolved, key, weights, merge=False)
    return resolved
