"""`python -m segexp.evaluate run=<run folder> [split=test | data=<folder>] [tta=flip] ...`

Loads a run's checkpoint and config, evaluates a split of the run's dataset or any folder of
images/ + masks/, and writes metrics.json, per_class.csv and confusion.png.
"""

import csv
import functools
import logging
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from segexp.cli import parse_args, run_tool
from segexp.config import build, class_names
from segexp.data.collate import pad_collate
from segexp.data.folder import FolderSegmentation
from segexp.errors import SegexpError
from segexp.inference import InferenceOptions, predict_probs
from segexp.metrics import ConfusionMatrix
from segexp.rundir import LoadedRun, load_run
from segexp.summary import metrics_table, write_json

log = logging.getLogger("segexp")
DEFAULTS: dict[str, Any] = {
    "run": "???",
    "checkpoint": "best",  # best | last | path to a .pt file
    "split": "test",  # train | val | test of the run's dataset
    "data": "",  # a folder with images/ and masks/ instead of a split
    "binary_masks": False,  # with data=: masks stored as 0/255 become 0/1
    "output": "",  # default: next to the checkpoint
    "tta": "none",  # none | flip | flip_hv
    "sliding_window": False,
    "tile": "",  # HxW, e.g. 256x256; default: the run's dataset.image_size
    "overlap": 0.5,
    "tile_batch": 8,
    "batch_size": 0,  # 0: the run's dataset.batch_size
    "device": "auto",
}
USAGE = __doc__ + "\noptions (defaults): " + " ".join(f"{k}={v}" for k, v in DEFAULTS.items())


def inference_options(opts: dict[str, Any], image_size) -> InferenceOptions:
    tile = None
    if opts["sliding_window"]:
        if opts["tile"]:
            try:
                tile = tuple(int(v) for v in str(opts["tile"]).lower().split("x"))
            except ValueError:
                tile = ()
            if len(tile) != 2:
                raise SegexpError(f"tile={opts['tile']}: write it as HEIGHTxWIDTH, e.g. 256x256")
        else:
            tile = (int(image_size[0]), int(image_size[1]))
    return InferenceOptions(
        tile=tile, overlap=opts["overlap"], tile_batch=opts["tile_batch"], tta=opts["tta"]
    )


def build_dataset(run: LoadedRun, opts: dict[str, Any]):
    cfg = run.cfg
    if opts["data"]:
        root = Path(opts["data"])
        return FolderSegmentation(
            root / "images",
            root / "masks",
            in_channels=int(cfg.dataset.in_channels),
            binary_masks=opts["binary_masks"],
            ignore_index=int(cfg.dataset.ignore_index),
        )
    split = opts["split"]
    if split not in {"train", "val", "test"}:
        raise SegexpError(f"split={split}: use train, val or test (or data=<folder>)")
    eval_tf = build(cfg.aug.eval) if cfg.aug.get("eval") is not None else None
    return build(cfg.dataset[split], transform=eval_tf)


@torch.inference_mode()
def confusion_of(run: LoadedRun, loader, options: InferenceOptions) -> ConfusionMatrix:
    """The confusion matrix of the run's model over ``loader``, exactly as training evaluates."""
    cfg, dev = run.cfg, run.dev
    confusion = ConfusionMatrix(
        int(cfg.dataset.num_classes), int(cfg.dataset.ignore_index), dev.device
    )
    plain = options.tile is None and options.tta == "none"
    for raw_images, raw_masks in tqdm(loader, desc="evaluate", unit="batch", leave=False):
        images, masks = dev.batch(raw_images, raw_masks)
        with dev.autocast():
            # Plain inference takes the argmax of the logits, as training's evaluate() does.
            scores = run.model(images) if plain else predict_probs(run.model, images, options)
        confusion.update(scores.argmax(dim=1), masks)
    confusion.all_reduce()
    return confusion


def save_confusion_png(matrix: torch.Tensor, names: list[str], path: Path) -> None:
    """Row-normalised (recall) heat map with the pixel counts written in each cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = matrix.cpu().double()
    rows = counts / counts.sum(dim=1, keepdim=True).clamp_min(1)
    size = 1.0 + 0.7 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(rows.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    if len(names) <= 12:
        for i in range(len(names)):
            for j in range(len(names)):
                colour = "white" if rows[i, j] > 0.5 else "black"
                ax.text(j, i, f"{rows[i, j]:.2f}", ha="center", va="center", color=colour)
    fig.colorbar(image, ax=ax, label="fraction of the ground-truth row")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_per_class_csv(metrics: dict[str, Any], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "iou", "dice"])
        for name, iou in metrics["per_class_iou"].items():
            writer.writerow([name, iou, metrics["per_class_dice"][name]])


def output_dir(run: LoadedRun, opts: dict[str, Any]) -> Path:
    if opts["output"]:
        return Path(opts["output"])
    source = Path(opts["data"]).name if opts["data"] else opts["split"]
    tag = f"eval_{run.checkpoint.stem}_{source}"
    if opts["tta"] != "none":
        tag += f"_tta-{opts['tta']}"
    if opts["sliding_window"]:
        tag += "_sliding"
    return run.checkpoint.parent / tag


def evaluate_run(opts: dict[str, Any]) -> dict[str, Any]:
    """Evaluate as ``opts`` (DEFAULTS updated) say; returns what metrics.json holds."""
    run = load_run(opts["run"], opts["checkpoint"], opts["device"])
    cfg = run.cfg
    options = inference_options(opts, cfg.dataset.image_size)
    dataset = build_dataset(run, opts)
    if len(dataset) == 0:
        raise SegexpError(f"no images to evaluate in {opts['data'] or opts['split']}")
    loader = DataLoader(
        dataset,
        batch_size=int(opts["batch_size"] or cfg.dataset.batch_size),
        num_workers=int(cfg.dataset.num_workers),
        collate_fn=functools.partial(pad_collate, ignore_index=int(cfg.dataset.ignore_index)),
    )
    confusion = confusion_of(run, loader, options)
    names = class_names(cfg.dataset)
    metrics = confusion.compute(names)
    out = output_dir(run, opts)
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "run_dir": str(run.run_dir),
        "checkpoint": str(run.checkpoint),
        "data": opts["data"] or f"{cfg.dataset.name}:{opts['split']}",
        "num_images": len(dataset),
        "tta": options.tta,
        "sliding_window": {"tile": list(options.tile), "overlap": options.overlap}
        if options.tile
        else None,
        "device": str(run.dev.device),
        **metrics,
        "confusion_matrix": confusion.matrix.cpu().tolist(),
    }
    write_per_class_csv(metrics, out / "per_class.csv")
    save_confusion_png(confusion.matrix, names, out / "confusion.png")
    write_json(result, out / "metrics.json")  # last: its presence means the others are complete
    log.info("%s\n%s", result["data"], metrics_table({"eval": metrics}))
    log.info("written to %s", out)
    return result


def main(argv: list[str]) -> dict[str, Any]:
    return evaluate_run(parse_args(argv, DEFAULTS, USAGE))


if __name__ == "__main__":
    run_tool(main)
