"""fit(): a run from start to summary, as a table of contents of its steps."""

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from omegaconf import DictConfig, OmegaConf

import segexp
from segexp.config.checks import validate
from segexp.config.tree import config_tree
from segexp.data.checks import preflight
from segexp.data.class_weights import resolve_auto_class_weights
from segexp.data.loaders import samples_in
from segexp.errors import SegexpError
from segexp.evaluation.loop import Scoring, evaluate, preview_indices
from segexp.evaluation.outputs import confusion_figure
from segexp.evaluation.protocol import evaluation_protocol
from segexp.metrics.calibration import calibration_summary
from segexp.metrics.table import metrics_table
from segexp.models.stats import model_stats
from segexp.models.unet import resolve_auto_depth
from segexp.runtime import distributed, interrupt
from segexp.storage.checkpoint import load_checkpoint
from segexp.storage.files import write_json
from segexp.training.budget import RunLength, plan_length
from segexp.training.epoch import train_one_epoch
from segexp.training.experiment import Experiment, build_experiment
from segexp.training.loggers import log_hparams, log_metrics, open_writer
from segexp.training.loggers.fanout import Writers
from segexp.training.resume import Progress, restore, save_epoch, training_state
from segexp.training.test_pass import score_test
from segexp.training.transfer import freeze_schedule
from segexp.visual.colours import dataset_palette, preview_grid
from segexp.visual.legend import titled_grid
from segexp.visual.samples import write_sample_preview

log = logging.getLogger(__name__)
# TensorBoard orders a dashboard's groups by name and opens the first two: the curves (train/,
# val/) come first, images after them (visuals/), one-value results last (loggers/tensorboard.py).
FINAL_TEST = "final/test"
# Where each split's scores are taken (summary.json "scored_at").
SCORED_AT = {
    "val": "after the evaluation transform (aug.eval), the resolution the model works at",
    "test": "the labels' own resolution (predictions mapped back to each mask's size)",
}


def prepare_config(cfg: DictConfig) -> DictConfig:
    """Checks before any work, and the config the run really uses (auto class weights and an
    auto U-Net depth resolved into a new config; the one given is never changed)."""
    validate(cfg)
    preflight(cfg)  # refuses bad files and labels before anything is written
    return resolve_auto_depth(resolve_auto_class_weights(cfg))


def fit(
    cfg: DictConfig,
    run_dir: Path,
    run_info: dict[str, Any] | None = None,
    on_start: Callable[[], None] | None = None,
    *,
    parallel_jobs: int = 1,
    sweep_job: bool = False,
) -> dict[str, Any]:
    """Train as configured and return the summary that is also written to run_dir/summary.json.

    Everything that can refuse the run (config, files, the checkpoint it continues from) comes
    before the first write into run_dir; ``on_start`` is called just before that write.
    ``parallel_jobs``: runs a sweep launcher executes beside this one (for num_threads=auto).
    ``sweep_job``: one job of a multirun (the sweep folder gets the HParams experiment record)."""
    started = time.perf_counter()  # a time budget counts from here, the run's first log line
    cfg = prepare_config(cfg)
    run_dir = distributed.broadcast_path(run_dir)  # rank 0's folder; only rank 0 writes there
    exp = build_experiment(cfg, parallel_jobs=parallel_jobs)
    stats = model_stats(exp.model, int(cfg.dataset.in_channels), _image_size(cfg), exp.dev.device)
    announce(exp, run_dir, stats)
    progress = restore(run_dir / "checkpoints" / "last.pt", exp)
    length = plan_length(exp, progress, started)  # may refuse a budget too small: no write yet
    if on_start is not None:
        on_start()
    writer = open_writer(cfg.logger, run_dir, progress.global_step if progress.epoch else None)
    if not progress.epoch:
        record_start(exp, run_dir, writer, stats)
    epochs = itertools.count(progress.epoch + 1)
    if exp.trainer.epochs is not None:
        epochs = range(progress.epoch + 1, exp.trainer.epochs + 1)
    for epoch in epochs:
        if progress.early_stopping.get("stopped_epoch") or length.finished(progress.global_step):
            break  # (resumed after the epoch that stopped it)
        started = run_epoch(exp, epoch, progress, writer, run_dir, started, length)
    test = test_best_weights(exp, run_dir, writer, progress)
    finals = {"val": progress.best_val, "test": test}
    log_hparams(writer, cfg, run_info or {}, finals, experiment_record=not sweep_job)
    writer.add_text("final_metrics", _as_code(metrics_table(finals)))
    progress.elapsed_seconds += time.perf_counter() - started
    early = bool(progress.early_stopping.get("stopped_epoch"))
    run_length = length.record(early, progress.elapsed_seconds)
    record_length(writer, run_length)
    writer.close()
    summary = make_summary(exp, run_dir, run_info or {}, progress, stats, test)
    summary.update(run_length)
    summary["logger_errors"] = writer.errors  # a logger's failure never fails the run
    if distributed.is_main():
        check_still_there(run_dir, progress)
        write_json(summary, run_dir / "summary.json")
        log.info(
            "final metrics (val at best epoch %d, test with its weights)\n%s",
            progress.best_epoch,
            metrics_table(finals),
        )
    return summary


def announce(exp: Experiment, run_dir: Path, stats: dict[str, Any]) -> None:
    """The resolved config as a tree (trainer.print_config) and one line on model and device."""
    if exp.trainer.print_config and distributed.is_main():
        header = {"run folder": str(run_dir), "device": f"{exp.dev.device} ({exp.dev.precision})"}
        log.info("config\n%s", config_tree(exp.cfg, header))
    log.info(
        "model %s: %.2fM parameters, %s GFLOPs | device %s | precision %s | %d CPU threads "
        "| %d batches per epoch",
        exp.cfg.model.net._target_, stats["num_parameters"] / 1e6, stats["gflops"],
        exp.dev.device, exp.dev.precision, torch.get_num_threads(), exp.splits.train_batches,
    )  # fmt: skip


def record_length(writer: Writers, run_length: dict[str, Any]) -> None:
    """The run's length in TensorBoard: each decision of the step plan as train/planned_steps
    at the step it was made, and the record (what stopped it, budget, time used) as text."""
    for step, total in run_length["step_plan"]:
        writer.add_scalar("train/planned_steps", total, step)
    lines = [f"{key}: {value}" for key, value in run_length.items() if key != "step_plan"]
    writer.add_text("run_length", _as_code("\n".join(lines)))


def _as_code(text: str) -> str:
    """Markdown code (TensorBoard renders text as markdown)."""
    return "    " + text.replace("\n", "\n    ")


def _image_size(cfg: DictConfig) -> tuple[int, int] | None:
    size = cfg.dataset.get("image_size")
    return None if size is None else (int(size[0]), int(size[1]))


def record_start(exp: Experiment, run_dir: Path, writer, stats: dict[str, Any]) -> None:
    """What a new run records once: its resolved config, model size, augmented samples."""
    resolved = OmegaConf.to_yaml(exp.cfg, resolve=True)
    writer.add_text("config", _as_code(resolved))
    # Constants are text, not one-point charts on TensorBoard's first page.
    writer.add_text("model", _as_code(yaml.safe_dump(stats, sort_keys=False)))
    if distributed.is_main():
        (run_dir / "resolved_config.yaml").write_text(resolved)
        train_set = getattr(exp.splits.train, "dataset", None)
        write_sample_preview(exp.cfg, run_dir, writer, train_set)


def run_epoch(
    exp: Experiment,
    epoch: int,
    progress: Progress,
    writer,
    run_dir: Path,
    started: float,
    length: RunLength,
) -> float:
    """Train one epoch (or up to the run's end in steps), validate, record; returns the time the
    next epoch's clock starts."""
    train_loss = train_epoch(exp, epoch, progress, writer, length)
    ended = time.perf_counter()
    val = validate_epoch(exp, epoch, writer)
    validation_seconds = time.perf_counter() - ended
    improved = track_best(exp, epoch, progress, val)
    mark = time.perf_counter()  # the checkpoint and logging below count in the next interval
    progress.elapsed_seconds += mark - started
    progress.step_plan = [list(decision) for decision in length.decisions]
    record_epoch(exp, progress, writer, run_dir, improved)
    length.epoch_ended(progress.global_step, validation_seconds, time.perf_counter() - ended)
    log.info(
        "epoch %d%s  step %d/%d  train loss %.4f  val loss %s  mIoU %.4f  mDice %.4f  "
        "(best %.4f @ %d)",
        epoch, "" if exp.trainer.epochs is None else f"/{exp.trainer.epochs}",
        progress.global_step, length.horizon, train_loss, _fmt(val.loss), val.metrics["mIoU"],
        val.metrics["mDice"], progress.best_miou, progress.best_epoch,
    )  # fmt: skip
    if progress.early_stopping.get("stopped_epoch"):
        log.info("early stopping at epoch %d: %s", epoch, stop_reason(exp, progress))
    return mark


def train_epoch(
    exp: Experiment, epoch: int, progress: Progress, writer, length: RunLength
) -> float:
    """One epoch of training (or less: the run's length in steps ends it); its steps, images and
    time go into ``progress`` and the loggers. Returns the epoch's mean loss."""
    interrupt.check()
    freeze_schedule(exp.model, epoch, writer)
    epoch_start = time.perf_counter()
    distributed.set_epoch(exp.splits.train, epoch)
    length.epoch_started()
    trained = train_one_epoch(
        exp, interrupt.until_stopped(exp.splits.train), writer,
        epoch=epoch, global_step=progress.global_step, num_batches=exp.splits.train_batches,
        stop=length.step_done,
    )  # fmt: skip
    interrupt.check()  # a signal during the epoch: abandon it, last.pt stays the resume point
    if trained.global_step == progress.global_step:
        raise SegexpError(
            f"epoch {epoch} ran no optimizer step (trainer.limit_train_batches="
            f"{exp.trainer.limit_train_batches}, {exp.splits.train_batches} train batches): "
            "nothing was trained; give the train split at least one batch"
        )
    seconds = time.perf_counter() - epoch_start
    progress.global_step = trained.global_step
    progress.train_seconds += seconds
    progress.images_seen += trained.images
    writer.add_scalar("train/images_per_s", trained.images / max(seconds, 1e-9), epoch)
    writer.add_scalar("train/epoch_seconds", seconds, epoch)
    writer.add_scalar("train/epoch_loss", trained.loss, epoch)
    return trained.loss


@dataclass
class Validation:
    metrics: dict[str, Any]  # SplitMetrics.compute
    loss: float | None


def validate_epoch(exp: Experiment, epoch: int, writer) -> Validation:
    """The val split scored with the weights validation uses; metrics, the confusion matrix and
    the preview grid go to the loggers."""
    distributed.sync_buffers(exp.model)
    # The preview's samples spread over what the pass scores (limit_val_batches included): the
    # same ones every epoch.
    scored = samples_in(exp.splits.val, exp.splits.val_batches)
    preview = preview_indices(exp.trainer.num_preview_images, scored)
    scoring = Scoring(exp.metrics, loss_fn=exp.loss_fn, preview=preview)
    result = evaluate(
        exp.scored_model, exp.splits.val, exp.dev, scoring, num_batches=exp.splits.val_batches
    )
    val = exp.metrics.compute(exp.class_names)
    log_metrics(writer, "val", val, result.loss, epoch)
    log_confusion(writer, "visuals/val", exp.metrics.matrix, exp.class_names, epoch)
    if result.preview:
        colours = dataset_palette(exp.cfg.dataset)
        grid = titled_grid(preview_grid(*result.preview, colours), exp.class_names, colours)
        writer.add_image("visuals/val_image_truth_prediction", grid, epoch)
    return Validation(val, result.loss)


def track_best(exp: Experiment, epoch: int, progress: Progress, val: Validation) -> bool:
    """The best epoch so far (val mIoU) and early stopping's state; whether this one is best."""
    improved = val.metrics["mIoU"] > progress.best_miou
    if improved:
        progress.best_miou, progress.best_epoch, progress.best_val = (
            val.metrics["mIoU"], epoch, val.metrics,
        )  # fmt: skip
    if exp.early_stopping is not None:
        value = exp.early_stopping.value(val.metrics, val.loss)
        progress.early_stopping = exp.early_stopping.update(progress.early_stopping, value, epoch)
    progress.epoch = epoch
    return improved


def record_epoch(
    exp: Experiment, progress: Progress, writer, run_dir: Path, improved: bool
) -> None:
    """Everything logged so far on disk, then the epoch's checkpoints (rank 0)."""
    writer.flush()  # everything logged up to this checkpoint is on disk before it
    if distributed.is_main():
        check_still_there(run_dir, progress)
        state = training_state(exp, progress)
        folder = run_dir / "checkpoints"
        save_epoch(state, folder, improved=improved, keep_every=exp.trainer.keep_every)


def check_still_there(run_dir: Path, progress: Progress) -> None:
    """A run folder deleted under a running run: stop, rather than write a new folder that
    holds a checkpoint and a summary but not the run's record (.hydra/, its logs)."""
    if not run_dir.is_dir():
        raise SegexpError(
            f"the run folder {run_dir} was deleted while the run went on (after epoch "
            f"{progress.epoch}): stopped, and nothing more is written; start the run again"
        )


def log_confusion(writer, group: str, matrix: torch.Tensor, names: list[str], step: int) -> None:
    """The row-normalised confusion matrix as an image (``<group>_confusion_matrix``)."""
    if writer.writers:  # drawing takes time: only when some logger receives it
        writer.add_figure(f"{group}_confusion_matrix", confusion_figure(matrix, names), step)


def stop_reason(exp: Experiment, progress: Progress) -> str | None:
    if exp.early_stopping is None or not progress.early_stopping.get("stopped_epoch"):
        return None
    return exp.early_stopping.reason(progress.early_stopping)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def test_best_weights(exp: Experiment, run_dir: Path, writer, progress: Progress) -> dict:
    """The test split scored with best.pt's weights, at the labels' resolution, inferred and
    post-processed as ``test`` configures (default: one whole-image pass, no post-processing).
    With post-processing, the returned metrics are the post-processed ones and hold the model's
    own under ``without_postprocess``. Also the confusion matrix, the expected calibration error
    of the model's probabilities, and per image: intersection and union (per_image.csv),
    calibration gaps (calibration.csv) and, with trainer.save_test_predictions, the prediction
    (predictions/test/<image>.png)."""
    distributed.barrier()  # best.pt is complete before the other ranks read it
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt", exp.dev.device)
    exp.model.load_state_dict(best["model"])
    ids = exp.splits.test.dataset.names
    scoring, per_image = score_test(exp, exp.splits.test_batches, run_dir=run_dir)
    calibration = scoring.calibration
    test = exp.metrics.compute(exp.class_names)
    if scoring.post_metrics is not None:
        test = {**scoring.post_metrics.compute(exp.class_names), "without_postprocess": test}
    matrix = scoring.final.matrix
    test |= {"confusion_matrix": matrix.cpu().tolist(), **calibration_summary(calibration)}
    log_confusion(writer, FINAL_TEST, matrix, exp.class_names, progress.best_epoch)
    if distributed.is_main():  # under torchrun each rank scored its shard: rank 0's file is partial
        per_image.write_csv(run_dir / "per_image.csv", exp.class_names, ids)
        calibration.write_csv(run_dir / "calibration.csv", ids)
    return test


def make_summary(
    exp: Experiment,
    run_dir: Path,
    run_info: dict[str, Any],
    progress: Progress,
    stats: dict[str, Any],
    test: dict[str, Any],
) -> dict[str, Any]:
    world = distributed.world_size()
    return {
        "status": "completed",
        **run_info,
        "run_dir": str(run_dir),
        "best_epoch": progress.best_epoch,
        "epochs": exp.trainer.epochs,
        "epochs_run": progress.epoch,
        "stopped_early": None
        if (reason := stop_reason(exp, progress)) is None
        else {"epoch": progress.epoch, "reason": reason},
        "ema": exp.ema is not None,
        "exact_resume": not progress.inexact_resume,
        "inexact_resume": progress.inexact_resume,
        "train_time_s": round(progress.elapsed_seconds, 2),
        "images_per_s": round(progress.images_seen * world / max(progress.train_seconds, 1e-9), 2),
        "world_size": world,
        "device": str(exp.dev.device),
        "precision": exp.dev.precision,
        "num_threads": torch.get_num_threads(),
        **stats,
        "segexp_version": segexp.__version__,
        "scored_at": SCORED_AT,
        "protocol": evaluation_protocol(exp.cfg, exp.splits),
        "val": progress.best_val,
        "test": test,
    }
