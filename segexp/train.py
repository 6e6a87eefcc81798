"""fit(): build everything from the config, train, validate each epoch, test the best weights."""

import logging
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import segexp
from segexp import distributed, interrupt
from segexp.checkpoint import load_checkpoint
from segexp.class_weights import resolve_auto_class_weights
from segexp.config import build, class_names, validate
from segexp.data.loaders import build_splits
from segexp.engine import evaluate, train_one_epoch
from segexp.hparams import log_hparams
from segexp.losses.auxiliary import WithAuxiliary
from segexp.metrics import ConfusionMatrix
from segexp.models.build import build_model
from segexp.models.stats import model_stats
from segexp.per_image import PerImageScores, image_ids
from segexp.preflight import preflight
from segexp.preview import write_sample_preview
from segexp.resume import restore, save_epoch, training_state
from segexp.runtime import make_device, seed_everything
from segexp.speed import maybe_compile
from segexp.summary import metrics_table, write_json
from segexp.transfer import build_optimizer, freeze_schedule
from segexp.visualize import palette, preview_grid
from segexp.writers import NullWriter

log = logging.getLogger(__name__)


def log_metrics(writer, split: str, metrics: dict[str, Any], loss: float, epoch: int) -> None:
    writer.add_scalar(f"{split}/loss", loss, epoch)
    for key in ("mIoU", "mDice", "pixel_acc", "mean_class_acc"):
        writer.add_scalar(f"{split}/{key}", metrics[key], epoch)
    for name, iou in metrics["per_class_iou"].items():
        writer.add_scalar(f"{split}_iou/{name}", iou, epoch)


def fit(cfg: DictConfig, run_dir: Path, run_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train as configured and return the summary that is also written to run_dir/summary.json."""
    validate(cfg)
    preflight(cfg)  # refuses bad files and labels before anything is written
    resolve_auto_class_weights(cfg)
    run_dir = distributed.broadcast_path(run_dir)  # rank 0's folder; only rank 0 writes there
    main_process = distributed.is_main()
    started = time.perf_counter()
    trainer = cfg.trainer
    seed_everything(int(cfg.seed), bool(trainer.deterministic), bool(trainer.cudnn_benchmark))
    torch.autograd.set_detect_anomaly(bool(trainer.get("detect_anomaly", False)))
    dev = make_device(cfg)
    splits = build_splits(cfg, pin_memory=dev.device.type == "cuda")
    names = class_names(cfg.dataset)
    num_classes, ignore_index = int(cfg.dataset.num_classes), int(cfg.dataset.ignore_index)

    model = build_model(cfg.model).to(dev.device)
    if dev.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model, train_model = distributed.prepare_model(model, bool(trainer.get("sync_bn", False)))
    net = maybe_compile(train_model, trainer.compile)
    eval_net = net if train_model is model else model  # DDP's forward would sync across ranks
    loss_fn = WithAuxiliary(build(cfg.loss), cfg.model.get("aux_loss_weight", 0.0)).to(dev.device)
    optimizer = build_optimizer(cfg.optimizer, model, dev.device, trainer.fused_optimizer)
    epochs = int(cfg.trainer.epochs)
    scheduler = build(cfg.scheduler)(optimizer=optimizer, total_steps=epochs * splits.train_batches)
    scaler = torch.amp.GradScaler(dev.device.type, enabled=dev.amp_dtype == torch.float16)
    confusion = ConfusionMatrix(num_classes, ignore_index, device=dev.device)
    colours = palette(num_classes)
    size = cfg.dataset.get("image_size")
    stats = model_stats(model, int(cfg.dataset.in_channels), size and tuple(size), dev.device)
    num_parameters = stats["num_parameters"]

    checkpoints = run_dir / "checkpoints"
    progress = restore(
        checkpoints / "last.pt", model, optimizer, scheduler, scaler, splits, dev.device
    )
    # Resumed: TensorBoard drops what a killed session logged after its last checkpoint.
    purge = {"purge_step": progress.global_step + 1} if progress.epoch else {}
    writer = build(cfg.logger, log_dir=str(run_dir), **purge) if main_process else NullWriter()
    if not progress.epoch:
        resolved = OmegaConf.to_yaml(cfg, resolve=True)
        writer.add_text("config", "    " + resolved.replace("\n", "\n    "))  # markdown code
        writer.add_scalar("model/num_parameters", num_parameters, 0)
        if stats["gflops"] is not None:
            writer.add_scalar("model/gflops", stats["gflops"], 0)
        if main_process:
            write_sample_preview(cfg, run_dir, writer, getattr(splits.train, "dataset", None))
    log.info(
        "model %s: %.2fM parameters, %s GFLOPs | device %s | precision %s | %d batches per epoch",
        cfg.model._target_,
        num_parameters / 1e6,
        stats["gflops"],
        dev.device,
        dev.amp_dtype or "fp32",
        splits.train_batches,
    )

    global_step = progress.global_step
    for epoch in range(progress.epoch + 1, epochs + 1):
        interrupt.check()
        freeze_schedule(model, epoch, int(cfg.model.get("freeze_encoder_epochs", 0)), writer)
        epoch_start = time.perf_counter()
        distributed.set_epoch(splits.train, epoch)
        train_loss, seen, global_step = train_one_epoch(
            net,
            loss_fn,
            optimizer,
            scheduler,
            scaler,
            interrupt.until_stopped(splits.train),
            dev,
            writer,
            epoch=epoch,
            global_step=global_step,
            grad_clip_norm=cfg.trainer.grad_clip_norm,
            log_every_n_steps=int(cfg.trainer.log_every_n_steps),
            num_batches=splits.train_batches,
        )
        interrupt.check()  # a signal during the epoch: abandon it, last.pt stays the resume point
        progress.train_seconds += time.perf_counter() - epoch_start
        progress.images_seen += seen
        distributed.sync_buffers(model)
        val_loss, preview = evaluate(
            eval_net,
            loss_fn,
            splits.val,
            dev,
            confusion,
            num_batches=splits.val_batches,
            num_preview=int(cfg.trainer.num_preview_images),
        )
        val = confusion.compute(names)
        writer.add_scalar("train/epoch_loss", train_loss, epoch)
        log_metrics(writer, "val", val, val_loss, epoch)
        if preview:
            writer.add_image("val/image_truth_prediction", preview_grid(*preview, colours), epoch)
        improved = val["mIoU"] > progress.best_miou
        if improved:
            progress.best_miou, progress.best_epoch, progress.best_val = val["mIoU"], epoch, val
        progress.epoch, progress.global_step = epoch, global_step
        progress.elapsed_seconds += time.perf_counter() - started
        started = time.perf_counter()
        writer.flush()  # everything logged up to this checkpoint is on disk before it
        if main_process:
            state = training_state(cfg, model, optimizer, scheduler, scaler, splits, progress)
            keep_every = int(trainer.get("keep_every", 0))
            save_epoch(state, checkpoints, improved=improved, keep_every=keep_every)
        best_miou, best_epoch = progress.best_miou, progress.best_epoch
        log.info(
            "epoch %d/%d  train loss %.4f  val loss %.4f  mIoU %.4f  mDice %.4f  (best %.4f @ %d)",
            epoch,
            epochs,
            train_loss,
            val_loss,
            val["mIoU"],
            val["mDice"],
            best_miou,
            best_epoch,
        )

    best_epoch, best_val = progress.best_epoch, progress.best_val
    distributed.barrier()  # best.pt is complete before the other ranks read it
    model.load_state_dict(load_checkpoint(checkpoints / "best.pt", dev.device)["model"])
    per_image = PerImageScores(num_classes, ignore_index)
    test_loss, _ = evaluate(
        eval_net,
        loss_fn,
        splits.test,
        dev,
        confusion,
        num_batches=splits.test_batches,
        desc="test",
        on_batch=per_image,
    )
    test = confusion.compute(names)
    log_metrics(writer, "test", test, test_loss, best_epoch)
    if main_process:  # under torchrun each rank scored its shard: rank 0's file is partial
        per_image.write_csv(run_dir / "per_image.csv", names, image_ids(splits.test.dataset))
    log_hparams(writer, cfg, run_info or {}, {"val": best_val, "test": test})
    writer.flush()
    writer.close()

    summary = {
        "status": "completed",
        **(run_info or {}),
        "run_dir": str(run_dir),
        "best_epoch": best_epoch,
        "epochs": epochs,
        "train_time_s": round(progress.elapsed_seconds + time.perf_counter() - started, 2),
        "images_per_s": round(
            progress.images_seen * distributed.world_size() / max(progress.train_seconds, 1e-9), 2
        ),
        "world_size": distributed.world_size(),
        "device": str(dev.device),
        "precision": str(dev.amp_dtype or "fp32").replace("torch.", ""),
        **stats,
        "segexp_version": segexp.__version__,
        "val": best_val,
        "test": test,
    }
    if not main_process:
        return summary
    write_json(summary, run_dir / "summary.json")
    log.info(
        "final metrics (val at best epoch %d, test with its weights)\n%s",
        best_epoch,
        metrics_table({"val": best_val, "test": test}),
    )
    return summary
