"""A grid of training samples as the model sees them: after augmentation, mask overlaid, legend.

Written at the start of every run (TensorBoard `visuals/train_augmented_samples` and
`previews/samples.png`) and by `python -m segexp.audit ... preview=true`.
"""

import copy
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from PIL import Image

from segexp.config.build import build, class_names
from segexp.data.loaders import seed_transform, training_transform
from segexp.visual.colours import dataset_palette, legend, overlay, palette

TILE = 128  # small images are enlarged (nearest neighbour) so that the overlay stays readable


def _tile(array: np.ndarray) -> Image.Image:
    tile = Image.fromarray(array)
    scale = max(1, TILE // array.shape[0])  # by height: one tile is an (image, overlay) pair
    return tile.resize((tile.width * scale, tile.height * scale), Image.NEAREST)


def sample_grid(
    dataset, names: list[str], num_samples: int = 8, columns: int = 4, colours=None
) -> np.ndarray:
    """uint8 (H, W, 3): pairs of (image, image + mask) tiles, then a legend row."""
    colours = (palette(len(names), names) if colours is None else colours).numpy()
    tiles = []
    for index in range(min(num_samples, len(dataset))):
        image, mask = dataset[index]
        image = image.numpy().transpose(1, 2, 0)
        mask = mask.numpy().astype(np.int64)
        pair = np.concatenate(
            [
                np.repeat(image, 3, 2) if image.shape[2] == 1 else image[..., :3],
                overlay(image, mask, colours),
            ],
            axis=1,
        )
        tiles.append(_tile(pair))
    width = max(t.width for t in tiles)
    height = max(t.height for t in tiles)
    columns = min(columns, len(tiles))
    rows = -(-len(tiles) // columns)
    canvas = Image.new("RGB", (columns * (width + 4), rows * (height + 4)), "gray")
    for i, tile in enumerate(tiles):
        canvas.paste(tile, ((i % columns) * (width + 4), (i // columns) * (height + 4)))
    return np.concatenate([np.asarray(canvas), legend(names, colours, canvas.width)], axis=0)


def write_sample_preview(
    cfg: DictConfig, run_dir: Path, writer=None, dataset=None, num_samples: int = 8
) -> Path:
    """Render ``num_samples`` augmented training samples to run_dir/previews/samples.png.

    The training transform is rebuilt with its own seed, so the preview does not shift the random
    stream that training uses.
    """
    transform = training_transform(cfg)
    seed_transform(transform, int(cfg.seed) + 1)
    if dataset is None:
        dataset = build(cfg.dataset.train, transform=transform)
    else:
        dataset = copy.copy(dataset)  # shares decoded data, not the transform
        dataset.transform = transform
    grid = sample_grid(
        dataset, class_names(cfg.dataset), num_samples, colours=dataset_palette(cfg.dataset)
    )
    path = Path(run_dir) / "previews" / "samples.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)
    if writer is not None:
        writer.add_image("visuals/train_augmented_samples", grid.transpose(2, 0, 1), 0)
    return path
