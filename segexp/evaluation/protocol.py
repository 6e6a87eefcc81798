"""The evaluation protocol of a run: everything besides the model that decides its test scores.

Recorded in summary.json (``protocol``) so that a comparison can refuse to pair runs scored
differently (sweeps/protocol.py): the same checkpoint can score several points of mIoU apart at
another evaluation resolution, on another split, or with another void label. Each field (and
where it helps, a part of one) names the config keys that set it (``SOURCES``): a difference is
deliberate when one of those keys is what a sweep compares.
"""

from typing import Any

from omegaconf import DictConfig, OmegaConf

from segexp.config.build import class_names
from segexp.data.split_hash import split_hash

# Where the files and samples of the splits come from (any dataset config).
_DATA = ("dataset.root", "dataset.data_seed", "dataset.image_size", "dataset.object_probs",
         "dataset.layout", "dataset.split_by", "dataset.split_lists", "dataset.split_fractions",
         "dataset.split_seed")  # fmt: skip
SOURCES: dict[str, tuple[str, ...]] = {
    "test_files": ("dataset.test", *_DATA),
    "labels": (
        "dataset.num_classes",
        "dataset.ignore_index",
        "dataset.mask_mode",
        "dataset.binary_masks",
        "dataset.colors",
        "dataset.class_names",
    ),
    "resolution": ("dataset.eval_resize", "dataset.resize", "aug.eval"),
    "resolution.eval_resize": ("dataset.eval_resize", "dataset.resize"),
    "resolution.aug_eval": ("aug.eval",),
    "inference": ("test.inference",),
    "postprocess": ("test.postprocess",),
    "trained_on": ("dataset.train", "dataset.val", *_DATA),
}


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _dataset_of(batches: Any) -> Any:
    """The dataset behind a DataLoader (the raw split behind the test pass's samples)."""
    dataset = getattr(batches, "dataset", None)
    return getattr(dataset, "dataset", dataset)


def evaluation_protocol(cfg: DictConfig, splits: Any) -> dict[str, Any]:
    """The record of ``SOURCES``' fields for a run of ``cfg`` over ``splits`` (its Splits)."""
    dataset = cfg.dataset
    test = cfg.get("test") or {}
    eval_resize = dataset.get("eval_resize")
    return {
        "test_files": split_hash(_dataset_of(splits.test)),
        "labels": {
            "num_classes": int(dataset.num_classes),
            "ignore_index": int(dataset.ignore_index),
            "mask_mode": "binary"
            if dataset.get("binary_masks")
            else str(dataset.get("mask_mode") or "index"),
            "class_names": class_names(dataset),
        },
        "resolution": {
            "eval_resize": _container(
                eval_resize if eval_resize is not None else dataset.get("resize")
            ),
            "aug_eval": _container(cfg.aug.get("eval")),
            "scored_at": "the labels' own resolution",
        },
        "inference": _container(test.get("inference")),
        "postprocess": _container(test.get("postprocess")),
        "trained_on": {
            "train": split_hash(_dataset_of(splits.train)),
            "val": split_hash(_dataset_of(splits.val)),
        },
    }
