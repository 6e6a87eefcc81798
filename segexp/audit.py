"""`segexp-audit dataset=...` (python -m segexp.audit): check a dataset's files and labels
before training.

Prints a table (samples per split, missing or unreadable files, size mismatches, mask values
against num_classes, per-class pixel frequency, median-frequency class weights, image mean/std),
writes the same as audit.json in its run folder, and exits non-zero on fatal problems.
"""

import logging
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from segexp.config.cli import hydra_app, run_tool
from segexp.data.survey import survey
from segexp.errors import SegexpError
from segexp.runtime import interrupt
from segexp.storage.files import write_json
from segexp.visual.samples import write_sample_preview

log = logging.getLogger("segexp.audit")


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:6.2f}%" if whole else "    -  "


def _kind(value: int, report: dict[str, Any]) -> tuple[str, str]:
    """(name, kind) of a mask value: a class, the ignore label, or outside both."""
    if 0 <= value < report["num_classes"]:
        return str(report["class_names"][value]), "class"
    if value == report["ignore_index"]:
        return "", "ignored"
    return "", "not a class"


def frequency_table(report: dict[str, Any]) -> list[str]:
    """Every class and every other value found in the masks: classes as a share of the labelled
    pixels, other values as a share of all pixels."""
    splits = report["splits"]
    weights = report.get("class_weights")
    found = {v for s in splits.values() for v in s["mask_values"]}
    values = sorted(set(range(report["num_classes"])) | found)
    lines = [
        "pixel frequency (classes: % of labelled pixels; other values: % of all pixels)",
        f"{'value':>5} {'name':<14} {'kind':<11}"
        + "".join(f" {n + ' px':>10}" for n in splits)
        + ("  weight (median freq.)" if weights else ""),
    ]
    for value in values:
        name, kind = _kind(value, report)
        cells = ""
        for s in splits.values():
            if kind == "class":
                cells += f" {_pct(s['class_pixels'][value], sum(s['class_pixels'])):>10}"
            else:
                count = s["mask_values"].get(value, 0)
                cells += f" {_pct(count, sum(s['mask_values'].values())):>10}"
        weight = f"  {weights[value]:.4f}" if weights and kind == "class" else ""
        lines.append(f"{value:>5} {name:<14} {kind:<11}{cells}{weight}")
    return lines


def format_report(report: dict[str, Any]) -> str:
    splits = report["splits"]
    lines = [
        f"label audit of dataset '{report['dataset']}' (num_classes={report['num_classes']}, "
        f"ignore_index={report['ignore_index']})",
        "",
        f"{'split':<6} {'samples':>7} {'unreadable':>10} {'size mismatch':>13} "
        f"{'masks w/o image':>15}  image sizes",
    ]
    for name, s in splits.items():
        sizes = ", ".join(f"{k} ({v})" for k, v in s["image_sizes"].items())
        lines.append(
            f"{name:<6} {s['samples']:>7} {len(s['unreadable']):>10} "
            f"{len(s['size_mismatches']):>13} {len(s['masks_without_image']):>15}  {sizes}"
        )
    lines.append("")
    for name, s in splits.items():
        found = ", ".join(f"{v}: {n} px" for v, n in s["mask_values"].items())
        lines.append(f"mask values in {name}: {found or 'none'}")
    lines.append("")
    lines += frequency_table(report)
    for name, s in splits.items():
        if s["image_mean"] is not None:
            lines.append(f"image mean / std ({name}, 0-255): {s['image_mean']} / {s['image_std']}")
    lines.append("")
    lines += [f"FATAL   {p}" for p in report["fatal"]]
    lines += [f"warning {w}" for w in report["warnings"]]
    if not report["fatal"]:
        lines.append("no fatal problems")
    return "\n".join(lines)


def run_audit(cfg: DictConfig) -> dict[str, Any]:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if OmegaConf.is_missing(cfg.dataset, "root"):
        raise SegexpError("dataset.root is not set: add dataset.root=/path/to/your/data")
    report = survey(cfg)
    write_json(report, run_dir / "audit.json")
    log.info("%s", format_report(report))
    log.info("written: %s", run_dir / "audit.json")
    if report["fatal"]:
        raise SegexpError(
            f"{len(report['fatal'])} fatal problem(s), listed above: fix them before training"
        )
    if cfg.get("preview"):
        log.info("preview: %s", write_sample_preview(cfg, run_dir, None, None, cfg.num_preview))
    return report


@hydra_app("audit", run_folders="outputs")
def main(cfg: DictConfig) -> None:
    run_tool(interrupt.interruptible(run_audit), cfg)


if __name__ == "__main__":
    main()
