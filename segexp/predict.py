"""`python -m segexp.predict run=<run folder> input=<image or folder> output=<folder>`

Writes, for each input image, masks/<stem>.png (class indices), overlays/<stem>.png (the image
with the classes' colours blended in) and, with --save-probs, probs/<stem>.npy (float16,
num_classes x H x W). Images of any size go through a sliding window of the training size
(smaller ones are padded up to one tile, which also keeps models that need sizes divisible by
32 working); sliding_window=false runs the model once on the whole image instead.
"""

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from segexp.cli import parse_args, run_tool
from segexp.data.folder import IMAGE_SUFFIXES, list_images, read_array
from segexp.errors import SegexpError
from segexp.inference import predict_probs
from segexp.visualize import overlay, palette

log = logging.getLogger("segexp")
DEFAULTS: dict[str, Any] = {
    "run": "???",
    "input": "???",
    "output": "???",
    "checkpoint": "best",
    "sliding_window": True,
    "tile": "",  # HxW; default: the run's dataset.image_size
    "overlap": 0.5,
    "tile_batch": 8,
    "tta": "none",
    "save_probs": False,
    "alpha": 0.5,  # overlay opacity of the class colours
    "overwrite": False,
    "device": "auto",
}
USAGE = __doc__ + "\noptions (defaults): " + " ".join(f"{k}={v}" for k, v in DEFAULTS.items())


def input_images(path: Path) -> list[Path]:
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise SegexpError(f"input={path} is not an image ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return [path]
    if not path.exists():
        raise SegexpError(f"input={path} does not exist: give an image file or a folder of images")
    images = list_images(path)
    if not images:
        raise SegexpError(f"input={path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    stems = [p.stem for p in images]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise SegexpError(
            f"input={path} has several images with the stem {duplicates[0]!r}: outputs are named "
            "by stem, so rename one of them"
        )
    return images


def predict(opts: dict[str, Any]) -> list[Path]:
    """Segment every input image; returns the mask files written."""
    from segexp.evaluate import inference_options
    from segexp.rundir import load_run

    images = input_images(Path(opts["input"]))
    out = Path(opts["output"])
    folders = {"masks": out / "masks", "overlays": out / "overlays"}
    if opts["save_probs"]:
        folders["probs"] = out / "probs"
    suffix = {"masks": ".png", "overlays": ".png", "probs": ".npy"}
    targets = [folders[k] / f"{p.stem}{suffix[k]}" for p in images for k in folders]
    existing = [t for t in targets if t.exists()]
    if existing and not opts["overwrite"]:
        raise SegexpError(
            f"{existing[0]} already exists ({len(existing)} output file(s) would be replaced): "
            "choose another output= or pass overwrite=true"
        )
    run = load_run(opts["run"], opts["checkpoint"], opts["device"])
    cfg, dev = run.cfg, run.dev
    num_classes = int(cfg.dataset.num_classes)
    if num_classes > 256:
        raise SegexpError(f"{num_classes} classes do not fit an 8-bit mask PNG")
    mode = {1: "L", 3: "RGB"}[int(cfg.dataset.in_channels)]
    options = inference_options(opts, cfg.dataset.image_size)
    colours = palette(num_classes)
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    written = []
    for path in tqdm(images, desc="predict", unit="image"):
        image = read_array(path, mode)
        pixels = torch.from_numpy(image.reshape(*image.shape[:2], -1).copy())
        batch = pixels.permute(2, 0, 1)[None]
        normalised, _ = dev.batch(batch, torch.zeros(1, 1, 1))
        with dev.autocast():
            # Accumulating on the host keeps device memory bounded by the tile batch.
            probs = predict_probs(run.model, normalised, options, accumulate_on="cpu")[0].cpu()
        mask = probs.argmax(dim=0).numpy().astype(np.uint8)
        Image.fromarray(mask).save(folders["masks"] / f"{path.stem}.png")
        Image.fromarray(overlay(image, mask, colours, float(opts["alpha"]))).save(
            folders["overlays"] / f"{path.stem}.png"
        )
        if opts["save_probs"]:
            np.save(folders["probs"] / f"{path.stem}.npy", probs.numpy().astype(np.float16))
        written.append(folders["masks"] / f"{path.stem}.png")
    log.info(
        "%d image(s) segmented: masks, overlays%s in %s",
        len(written),
        ", probabilities" if opts["save_probs"] else "",
        out,
    )
    return written


def main(argv: list[str]) -> list[Path]:
    return predict(parse_args(argv, DEFAULTS, USAGE))


if __name__ == "__main__":
    run_tool(main)
