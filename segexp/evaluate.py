"""`segexp-evaluate run=<run folder> [split=test | data=<folder>] [inference.tta=flip] ...`

Scores a run's checkpoint on a split of its dataset or on any folder of images/ + masks/, with
the same data checks, evaluation transform, inference pipeline and evaluation loop as training's
final test pass, at the labels' own resolution. Writes metrics.json (with the expected
calibration error), per_class.csv, confusion.png and reliability.png (conf/evaluate.yaml lists
every option).
"""

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from segexp.config.build import build
from segexp.config.cli import hydra_app, run_tool
from segexp.data.checks import check_datasets
from segexp.data.collate import list_collate
from segexp.data.folder import FolderSegmentation
from segexp.data.loaders import evaluation_transform, num_workers
from segexp.data.sample import EvaluationSamples
from segexp.errors import SegexpError
from segexp.evaluation.loop import Scoring, evaluate
from segexp.evaluation.outputs import (
    PredictionWriter,
    reliability_figure,
    save_confusion_png,
    write_per_class_csv,
)
from segexp.evaluation.pipeline import InferenceOptions
from segexp.evaluation.postprocess import build_postprocess
from segexp.metrics.calibration import BINS, Calibration, calibration_summary
from segexp.metrics.table import metrics_table
from segexp.runtime import interrupt
from segexp.storage.files import check_output, write_json
from segexp.training.experiment import LoadedRun, checkpoint_path, load_run

log = logging.getLogger("segexp")


def folder_dataset(run_cfg: DictConfig, root: Path, mask_mode: str | None) -> FolderSegmentation:
    """images/ + masks/ under ``root``, decoded with the run's dataset settings."""
    dataset = run_cfg.dataset
    return FolderSegmentation(
        root / "images",
        root / "masks",
        in_channels=int(dataset.in_channels),
        mask_mode=str(mask_mode or dataset.get("mask_mode", "index")),
        colors=dataset.get("colors"),
        ignore_index=int(dataset.ignore_index),
        uint16_scale=str(dataset.get("uint16_scale", "full")),
    )


def scored_dataset(run: LoadedRun, cfg: DictConfig):
    """The split or folder to score, after the same label check training runs."""
    dataset_cfg = run.cfg.dataset
    if cfg.data:
        data = folder_dataset(run.cfg, Path(cfg.data), cfg.dataset.mask_mode)
        source = f"data={cfg.data}"
    else:
        if cfg.split not in {"train", "val", "test"}:
            raise SegexpError(f"split={cfg.split}: use train, val or test (or data=<folder>)")
        data = build(dataset_cfg[cfg.split])
        source = f"the {cfg.split} split of dataset '{dataset_cfg.name}'"
    if len(data) == 0:
        raise SegexpError(f"no images to evaluate in {source}")
    num_classes, ignore_index = int(dataset_cfg.num_classes), int(dataset_cfg.ignore_index)
    check_datasets({cfg.split: data}, num_classes, ignore_index, source)
    return EvaluationSamples(data, evaluation_transform(run.cfg))


def output_dir(cfg: DictConfig, options: InferenceOptions, postprocess: str | None) -> Path:
    """``output=``, else a folder beside the checkpoint named by what is scored and how."""
    if cfg.output:
        return Path(cfg.output)
    checkpoint = checkpoint_path(Path(cfg.run), str(cfg.checkpoint))
    source = Path(cfg.data).name if cfg.data else cfg.split
    tag = f"eval_{checkpoint.stem}_{source}"
    if options.tta != "none":
        tag += f"_tta-{options.tta}"
    if options.tile is not None:
        tag += "_sliding"
    if postprocess:
        tag += f"_post-{postprocess}"
    return checkpoint.parent / tag


def evaluate_run(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate as ``cfg`` (conf/evaluate.yaml) says; returns what metrics.json holds."""
    options = build(cfg.inference)
    postprocess = build_postprocess(cfg.postprocess)
    post_name = getattr(postprocess, "name", None)
    out = check_output(output_dir(cfg, options, post_name), "output", folder=True)
    run = load_run(cfg.run, cfg.checkpoint, cfg.device)
    dataset = scored_dataset(run, cfg)
    batch_size = int(cfg.batch_size or run.cfg.dataset.batch_size)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers(run.cfg.dataset.num_workers),
        collate_fn=list_collate,
    )
    on_sample = (
        PredictionWriter(out / "predictions", dataset.names) if cfg.save_predictions else None
    )
    exp = run.experiment
    calibration = Calibration(exp.metrics.confusion.num_classes, exp.metrics.ignore_index)
    scoring = Scoring(
        exp.metrics, postprocess=postprocess, on_sample=on_sample, calibration=calibration
    )
    evaluate(
        exp.model, loader, exp.dev, scoring,
        num_batches=len(loader), options=options, desc="evaluate",
    )  # fmt: skip
    metrics = exp.metrics.compute(exp.class_names)
    # With post-processing, the top-level metrics are the post-processed ones (what the
    # predictions written are); "without_postprocess" holds the model's own, side by side.
    final = scoring.final
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "run_dir": str(run.run_dir),
        "checkpoint": str(run.checkpoint),
        "data": cfg.data or f"{run.cfg.dataset.name}:{cfg.split}",
        "num_images": len(dataset),
        "scored_at": "the labels' own resolution",
        "inference": OmegaConf.to_container(cfg.inference),
        "postprocess": OmegaConf.to_container(cfg.postprocess) or None,
        "boundary_tolerance": exp.metrics.boundary.tolerance,
        "device": str(exp.dev.device),
        **final.compute(exp.class_names),
        "confusion_matrix": final.matrix.cpu().tolist(),
        **calibration_summary(calibration),
    }
    tables = {"eval": result}
    if scoring.post_metrics is not None:
        result["without_postprocess"] = {
            **metrics,
            "confusion_matrix": exp.metrics.matrix.cpu().tolist(),
        }
        tables = {"model": metrics, post_name or "post": result}
    write_per_class_csv(result, out / "per_class.csv")
    save_confusion_png(final.matrix, exp.class_names, out / "confusion.png")
    curve = {**result["reliability"], "ece": result["ece"]}
    reliability_figure({"model": curve}).savefig(out / "reliability.png", dpi=100)
    write_json(result, out / "metrics.json")  # last: its presence means the others are complete
    log.info("%s\n%s", result["data"], metrics_table(tables))
    log.info("expected calibration error (ECE, %d bins): %.4f", BINS, result["ece"])
    log.info("written to %s", out)
    return result


@hydra_app("evaluate")
def main(cfg: DictConfig) -> None:
    run_tool(interrupt.interruptible(evaluate_run), cfg)


if __name__ == "__main__":
    main()
