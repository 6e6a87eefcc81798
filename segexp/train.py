"""fit(): build everything from the config, train, validate each epoch, test the best weights."""

import logging
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import segexp
from segexp.checkpoint import load_checkpoint, save_checkpoint
from segexp.config import build, class_names, validate
from segexp.data.loaders import build_splits
from segexp.engine import evaluate, train_one_epoch
from segexp.hparams import log_hparams
from segexp.metrics import ConfusionMatrix
from segexp.per_image import PerImageScores, image_ids
from segexp.runtime import make_device, seed_everything
from segexp.summary import metrics_table, write_json
from segexp.visualize import palette, preview_grid

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
    started = time.perf_counter()
    seed_everything(int(cfg.seed), bool(cfg.trainer.deterministic))
    dev = make_device(cfg)
    splits = build_splits(cfg, pin_memory=dev.device.type == "cuda")
    names = class_names(cfg.dataset)
    num_classes, ignore_index = int(cfg.dataset.num_classes), int(cfg.dataset.ignore_index)

    model = build(cfg.model).to(dev.device)
    if dev.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = build(cfg.loss).to(dev.device)
    optimizer = build(cfg.optimizer)(params=model.parameters())
    epochs = int(cfg.trainer.epochs)
    scheduler = build(cfg.scheduler)(optimizer=optimizer, total_steps=epochs * splits.train_batches)
    scaler = torch.amp.GradScaler(dev.device.type, enabled=dev.amp_dtype == torch.float16)
    confusion = ConfusionMatrix(num_classes, ignore_index, device=dev.device)
    colours = palette(num_classes)
    num_parameters = sum(p.numel() for p in model.parameters())

    writer = build(cfg.logger, log_dir=str(run_dir))
    resolved = OmegaConf.to_yaml(cfg, resolve=True)
    writer.add_text("config", "    " + resolved.replace("\n", "\n    "))  # markdown code block
    log.info(
        "model %s: %.2fM parameters | device %s | precision %s | %d train batches per epoch",
        cfg.model._target_,
        num_parameters / 1e6,
        dev.device,
        dev.amp_dtype or "fp32",
        splits.train_batches,
    )

    checkpoints = run_dir / "checkpoints"
    best_miou, best_epoch, best_val = -1.0, 0, {}
    global_step = images_seen = 0
    train_seconds = 0.0
    for epoch in range(1, epochs + 1):
        epoch_start = time.perf_counter()
        train_loss, seen, global_step = train_one_epoch(
            model,
            loss_fn,
            optimizer,
            scheduler,
            scaler,
            splits.train,
            dev,
            writer,
            epoch=epoch,
            global_step=global_step,
            grad_clip_norm=cfg.trainer.grad_clip_norm,
            log_every_n_steps=int(cfg.trainer.log_every_n_steps),
            num_batches=splits.train_batches,
        )
        train_seconds += time.perf_counter() - epoch_start
        images_seen += seen
        val_loss, preview = evaluate(
            model,
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
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "epoch": epoch,
            "global_step": global_step,
            "best_miou": max(best_miou, val["mIoU"]),
            "config": OmegaConf.to_container(cfg, resolve=True),
            "segexp_version": segexp.__version__,
        }
        if val["mIoU"] > best_miou:
            best_miou, best_epoch, best_val = val["mIoU"], epoch, val
            save_checkpoint(state, checkpoints / "best.pt")
        save_checkpoint(state, checkpoints / "last.pt")
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

    model.load_state_dict(load_checkpoint(checkpoints / "best.pt", dev.device)["model"])
    per_image = PerImageScores(num_classes, ignore_index)
    test_loss, _ = evaluate(
        model,
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
        "train_time_s": round(time.perf_counter() - started, 2),
        "images_per_s": round(images_seen / max(train_seconds, 1e-9), 2),
        "device": str(dev.device),
        "precision": str(dev.amp_dtype or "fp32").replace("torch.", ""),
        "num_parameters": num_parameters,
        "segexp_version": segexp.__version__,
        "val": best_val,
        "test": test,
    }
    write_json(summary, run_dir / "summary.json")
    log.info(
        "final metrics (val at best epoch %d, test with its weights)\n%s",
        best_epoch,
        metrics_table({"val": best_val, "test": test}),
    )
    return summary
