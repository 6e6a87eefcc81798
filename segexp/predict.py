"""`segexp-predict run=<run folder> input=<image or folder> output=<folder>`

Segments images with a trained run: each is decoded as training decodes it, goes through the
run's evaluation transform and the same inference pipeline as evaluation, and its mask comes
back at the image's own size (then post-processed, with postprocess=...). Writes
masks/<stem>.png (class indices), overlays/<stem>.png and, with save_probs=true,
probs/<stem>.npy (conf/predict.yaml lists every option).
"""

import logging
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image
from tqdm import tqdm

from segexp.config.build import build, class_names
from segexp.config.cli import hydra_app, run_tool
from segexp.data.decode import IMAGE_SUFFIXES, image_size, read_image
from segexp.data.layout import list_images
from segexp.data.loaders import evaluation_transform
from segexp.data.sample import image_tensor
from segexp.errors import SegexpError
from segexp.evaluation.outputs import save_class_map
from segexp.evaluation.pipeline import predict_image, to_probabilities
from segexp.evaluation.postprocess import build_postprocess
from segexp.runtime import interrupt
from segexp.storage.files import check_output
from segexp.training.experiment import load_run
from segexp.visual.colours import dataset_palette, legend, overlay

log = logging.getLogger("segexp")
SUFFIX = {"masks": ".png", "overlays": ".png", "probs": ".npy"}


def input_images(path: Path) -> list[Path]:
    """The images to segment, each checked to open (as training checks its files) before any
    output is written."""
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise SegexpError(f"input={path} is not an image ({', '.join(sorted(IMAGE_SUFFIXES))})")
        images = [path]
    elif not path.exists():
        raise SegexpError(f"input={path} does not exist: give an image file or a folder of images")
    else:
        images = list_images(path)
    stems = [p.stem for p in images]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise SegexpError(
            f"input={path} has several images with the stem {duplicates[0]!r}: outputs are named "
            "by stem, so rename one of them"
        )
    for image in images:
        image_size(image)
    return images


def output_folders(cfg: DictConfig, images: list[Path]) -> dict[str, Path]:
    out = check_output(cfg.output, "output", folder=True)
    folders = {"masks": out / "masks", "overlays": out / "overlays"}
    if cfg.save_probs:
        folders["probs"] = out / "probs"
    targets = [folders[k] / f"{p.stem}{SUFFIX[k]}" for p in images for k in folders]
    existing = [t for t in targets if t.exists()]
    if existing and not cfg.overwrite:
        raise SegexpError(
            f"{existing[0]} already exists ({len(existing)} output file(s) would be replaced): "
            "choose another output= or pass overwrite=true"
        )
    return folders


@torch.inference_mode()
def predict(cfg: DictConfig) -> list[Path]:
    """Segment every input image; returns the mask files written."""
    options = build(cfg.inference)
    postprocess = build_postprocess(cfg.postprocess)
    images = input_images(Path(cfg.input))
    folders = output_folders(cfg, images)
    run = load_run(cfg.run, cfg.checkpoint, cfg.device)
    dataset, dev = run.cfg.dataset, run.dev
    transform = evaluation_transform(run.cfg)
    colours = dataset_palette(dataset)
    names = class_names(dataset)
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    written = []
    for path in interrupt.until_stopped(tqdm(images, desc="predict", unit="image")):
        image = read_image(path, int(dataset.in_channels), str(dataset.get("uint16_scale", "full")))
        x = dev.images(image_tensor(image, transform)[None])
        with dev.autocast():
            # Accumulating on the host keeps device memory bounded by the tile batch.
            scores = predict_image(run.model, x, image.shape[:2], options, accumulate_on="cpu")
        mask = scores.argmax(dim=1)[0].cpu()
        if postprocess is not None:
            probs = to_probabilities(scores, options)[0].cpu()
            mask = postprocess(mask, probs, torch.from_numpy(np.atleast_3d(image)).permute(2, 0, 1))
        save_class_map(mask, folders["masks"] / f"{path.stem}.png")
        blended = overlay(image, mask.numpy(), colours, float(cfg.alpha))
        blended = np.concatenate([blended, legend(names, colours, blended.shape[1])], axis=0)
        Image.fromarray(blended).save(folders["overlays"] / f"{path.stem}.png")
        if cfg.save_probs:
            probs = to_probabilities(scores, options)[0].cpu().numpy().astype(np.float16)
            np.save(folders["probs"] / f"{path.stem}.npy", probs)
        written.append(folders["masks"] / f"{path.stem}.png")
    interrupt.check()  # stopped by a signal: the files written so far are whole
    log.info(
        "%d image(s) segmented: masks, overlays%s in %s",
        len(written),
        ", probabilities" if cfg.save_probs else "",
        cfg.output,
    )
    return written


@hydra_app("predict")
def main(cfg: DictConfig) -> None:
    run_tool(interrupt.interruptible(predict), cfg)


if __name__ == "__main__":
    main()
