"""What changed between a variant and its baseline, as pictures: the test images where the
variant gains and loses most (image / truth / baseline / variant, with the class legend), and
the difference of the two confusion matrices.

An image's gain is its own mIoU (over the classes in that image) under the variant minus under
the baseline, averaged over the seeds both ran (from per_image.csv); the rows show the first
shared seed's predictions, which every job keeps as class-index PNGs (predictions/test/, with
``trainer.save_test_predictions``). The image and its truth come from the baseline run's test
split, rebuilt from its resolved config. The pictures go to ``<report folder>/gallery/`` and to
TensorBoard (the same folder's event file).
"""

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.tensorboard import SummaryWriter

from segexp.config.build import build, class_names
from segexp.data.sample import image_tensor
from segexp.errors import SegexpError
from segexp.evaluation.outputs import confusion_difference_figure
from segexp.sweeps.intervals import miou_rows
from segexp.sweeps.jobs import Job
from segexp.sweeps.paired import Comparison, paired_counts
from segexp.visual.colours import class_map_grid, dataset_palette
from segexp.visual.legend import titled_grid

log = logging.getLogger("segexp")
FOLDER = "gallery"
ROWS = 3  # images with the largest gains, and as many with the largest losses
TILE = 160  # pixels: every image is shown at this height (class maps resized as nearest)


@dataclass
class Pictures:
    """The gallery of one comparison: files relative to the report folder, or why not."""

    grid: str | None = None
    confusion: str | None = None
    note: str = ""


def image_gains(comparison: Comparison) -> tuple[list[str], np.ndarray] | None:
    """Test image ids and each one's mean gain over the seeds; None without per-image counts."""
    counts = paired_counts(comparison.pairs)
    if counts is None:
        return None
    gains = np.mean([miou_rows(ib, ub) - miou_rows(ia, ua) for ia, ua, ib, ub in counts], axis=0)
    ids = _ids(comparison.pairs[0][0])
    return ids, gains


def _ids(job: Job) -> list[str]:
    with (job.path / "per_image.csv").open() as f:
        return [line.split(",", 1)[0] for line in f.read().splitlines()[1:]]


def chosen(ids: list[str], gains: np.ndarray, rows: int = ROWS) -> list[tuple[str, float]]:
    """The ``rows`` largest gains (> 0), then the ``rows`` largest losses (< 0)."""
    order = np.argsort(np.nan_to_num(gains, nan=0.0))
    best = [(ids[i], float(gains[i])) for i in order[::-1][:rows] if gains[i] > 0]
    worst = [(ids[i], float(gains[i])) for i in order[:rows] if gains[i] < 0]
    return best + worst


def _class_map(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path), dtype=np.int64))


def _tile(image: torch.Tensor, maps: list[torch.Tensor]) -> tuple[torch.Tensor, list]:
    """The image and its class maps at TILE pixels high (the maps at the image's size first)."""
    height, width = image.shape[-2:]
    size = (TILE, max(1, round(width * TILE / height)))
    image = F.interpolate(image[None].float(), size=size, mode="bilinear")[0]
    image = image.round().clamp(0, 255).byte()
    maps = [F.interpolate(m[None, None].float(), size=size, mode="nearest")[0, 0].long()
            for m in maps]  # fmt: skip
    return image, maps


def gallery_grid(comparison: Comparison, rows: list[tuple[str, float]]) -> torch.Tensor:
    """uint8 (3, H, W): per chosen image, image / truth / baseline / variant, titled, with the
    class legend; the first shared seed's predictions."""
    base, other = comparison.pairs[0]
    cfg = OmegaConf.load(base.path / "resolved_config.yaml")
    test = build(cfg.dataset.test)
    index = {name: i for i, name in enumerate(test.names)}
    images, maps = [], []
    for image_id, _ in rows:
        image, truth = test.load(index[image_id])
        predictions = [_class_map(job.path / "predictions" / "test" / f"{image_id}.png")
                       for job in (base, other)]  # fmt: skip
        tile, coloured = _tile(image_tensor(image), [torch.from_numpy(truth.astype(np.int64)),
                                                    *predictions])  # fmt: skip
        images.append(tile)
        maps.append(coloured)
    if len({tuple(i.shape) for i in images}) > 1:  # images of several shapes: the first's width
        width = images[0].shape[-1]
        images = [i[..., :width] if i.shape[-1] >= width else F.pad(i, (0, width - i.shape[-1]))
                  for i in images]  # fmt: skip
        maps = [[m[..., :width] if m.shape[-1] >= width else F.pad(m, (0, width - m.shape[-1]),
                 value=255) for m in row] for row in maps]  # fmt: skip
    columns = [torch.stack([row[k] for row in maps]) for k in range(3)]
    colours = dataset_palette(cfg.dataset)
    grid = class_map_grid(torch.stack(images), columns, colours)
    seed = comparison.seeds[0]
    base_name, other_name = labels_of(comparison)
    titles = ("image", "truth", _short(f"{base_name} s{seed}"), _short(f"{other_name} s{seed}"))
    labels = [f"{gain:+.3f} {image_id}" for image_id, gain in rows]
    return titled_grid(grid, class_names(cfg.dataset), colours, titles, labels)


def labels_of(comparison: Comparison) -> tuple[str, str]:
    """(baseline, variant) as the pictures name them: ``aug=none`` rather than ``none``."""
    if comparison.factor == "variant":  # runs compared: the labels are whole variants
        return comparison.baseline, comparison.value
    return f"{comparison.factor}={comparison.baseline}", f"{comparison.factor}={comparison.value}"


def _short(text: str, limit: int = TILE // 6 - 1) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "~"


def confusion_difference(comparison: Comparison) -> np.ndarray | None:
    """Mean over the seeds of (variant - baseline) row-normalised test confusion matrices."""
    differences = []
    for base, other in comparison.pairs:
        matrices = [job.summary.get("test", {}).get("confusion_matrix") for job in (base, other)]
        if None in matrices:
            return None
        rows = [np.asarray(m, float) / np.maximum(np.asarray(m, float).sum(1, keepdims=True), 1)
                for m in matrices]  # fmt: skip
        differences.append(rows[1] - rows[0])
    return np.mean(differences, axis=0)


def slug(comparison: Comparison, number: int) -> str:
    name = f"{number}_{comparison.value}_vs_{comparison.baseline}"
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name)[:80]


def write_gallery(comparisons: list[Comparison], folder: Path) -> list[Pictures]:
    """For each comparison, its pictures in ``folder/gallery`` (PNGs and one TensorBoard event
    file, replacing an earlier report's); a note where a picture cannot be made."""
    out = folder / FOLDER
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("events.out.tfevents.*"):
        old.unlink()
    writer = SummaryWriter(str(out))
    made = []
    try:
        for number, comparison in enumerate(comparisons):
            made.append(_pictures(comparison, number, out, writer))
    finally:
        writer.close()
    return made


def _pictures(comparison: Comparison, number: int, out: Path, writer: SummaryWriter) -> Pictures:
    name = slug(comparison, number)
    pictures = Pictures()
    names = list(comparison.pairs[0][0].summary.get("test", {}).get("per_class_iou", {}))
    difference = confusion_difference(comparison)
    if difference is not None and len(names) == len(difference):
        seeds = ",".join(comparison.seeds)
        base_name, other_name = labels_of(comparison)
        title = f"{other_name} - {base_name}, mean over seeds {seeds}"
        figure = confusion_difference_figure(difference, names, title)
        figure.savefig(out / f"{name}_confusion.png", dpi=100, bbox_inches="tight")
        writer.add_figure(f"{name}/confusion_difference", figure)
        pictures.confusion = f"{FOLDER}/{name}_confusion.png"
    gains = image_gains(comparison)
    base, other = comparison.pairs[0]
    missing = [
        job.name for job in (base, other) if not (job.path / "predictions" / "test").is_dir()
    ]
    if gains is None or missing:
        pictures.note = (
            f"no kept test predictions in {', '.join(missing)} (trainer.save_test_predictions)"
            if missing
            else "no per-image counts (per_image.csv) to rank the images"
        )
        return pictures
    rows = chosen(*gains)
    if not rows:
        pictures.note = "no test image changed"
        return pictures
    try:
        grid = gallery_grid(comparison, rows)
    except (SegexpError, OSError, KeyError, ValueError) as err:  # e.g. a root relative elsewhere
        pictures.note = f"the test images could not be read from here ({type(err).__name__}: {err})"
        log.warning("gallery of %s: %s", name, pictures.note)
        return pictures
    Image.fromarray(grid.permute(1, 2, 0).numpy()).save(out / f"{name}.png", optimize=True)
    writer.add_image(f"{name}/gains_and_losses", grid)
    pictures.grid = f"{FOLDER}/{name}.png"
    return pictures
