"""A dataset read whole, once: what the label audit prints and what the planner (segexp-plan)
decides from. Every split is scanned with the one reader (data/scan.py); the result is the
report ``segexp-audit`` writes as audit.json."""

from typing import Any

from omegaconf import DictConfig

from segexp.config.build import build, class_names
from segexp.data.class_weights import class_weight_keys
from segexp.data.layout import SPLITS
from segexp.data.scan import (
    RARE_FRACTION,
    findings,
    median_frequency_weights,
    rare_class_share,
    scan_split,
)
from segexp.errors import SegexpError


def config_problems(dataset: DictConfig) -> list[str]:
    num_classes, ignore_index = int(dataset.num_classes), int(dataset.ignore_index)
    problems = []
    if 0 <= ignore_index < num_classes:
        problems.append(
            f"config: ignore_index={ignore_index} is one of the classes 0..{num_classes - 1}: "
            "pixels of that class would never be learned; use a value outside, e.g. 255"
        )
    names = dataset.get("class_names")
    if names is not None and len(names) != num_classes:
        problems.append(
            f"config: {len(names)} class_names for num_classes={num_classes}: give one per class"
        )
    return problems


def survey(cfg: DictConfig) -> dict[str, Any]:
    """Scan every configured split; returns the report (also what audit.json holds)."""
    dataset = cfg.dataset
    num_classes, ignore_index = int(dataset.num_classes), int(dataset.ignore_index)
    report: dict[str, Any] = {
        "dataset": str(dataset.name),
        "num_classes": num_classes,
        "class_names": class_names(dataset),
        "ignore_index": ignore_index,
        "splits": {},
        "fatal": config_problems(dataset),
        "warnings": [],
    }
    seen = {}
    for split in SPLITS:
        if dataset.get(split) is None:
            continue
        try:
            data = build(dataset[split])
        except SegexpError as err:
            report["fatal"].append(f"{split}: {err}")
            continue
        pairs = getattr(data, "pairs", None)
        key = None if pairs is None else tuple(pairs)
        if key is not None and key in seen:
            report["warnings"].append(f"{split}: the same samples as {seen[key]}")
        seen.setdefault(key, split)
        scan = scan_split(data, split, num_classes, images="full")
        fatal, warnings = findings(scan, num_classes, ignore_index, report["class_names"])
        report["splits"][split] = scan
        report["fatal"] += fatal
        report["warnings"] += warnings
    train = report["splits"].get("train")
    if train:
        report["class_weights"] = median_frequency_weights(
            train["class_pixels"], train["presence_pixels"]
        )
        report["suggested_mean"], report["suggested_std"] = train["image_mean"], train["image_std"]
        rare = rare_class_share(train["class_pixels"])
        if rare:
            report["rare_classes"] = {
                report["class_names"][c]: round(v, 5) for c, v in rare.items()
            }
            report["warnings"].append(imbalance_advice(cfg, report["class_names"], rare))
    return report


def imbalance_advice(cfg: DictConfig, names: list[str], rare: dict[int, float]) -> str:
    """The warning for classes under RARE_FRACTION of the labelled pixels, with the overrides."""
    listed = ", ".join(f"{names[c]} {100 * share:.2f}%" for c, share in rare.items())
    weights = " ".join(f"{key}=auto" for key in class_weight_keys(cfg.loss)) or (
        "a loss with class_weights (e.g. loss=ce loss.class_weights=auto)"
    )
    return (
        f"train: class imbalance: {listed} of the labelled pixels (under "
        f"{100 * RARE_FRACTION:.0f}%): such classes often stay at 0 IoU. Try median-frequency "
        f"class weights ({weights}) and/or the rare-class sampler (dataset.sampler=rare_class); "
        "compare them with python -m segexp --multirun +experiment=class_imbalance dataset=..."
    )
