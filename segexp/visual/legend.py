"""Column titles and a class legend around a preview grid, so a grid reads on its own.

TensorBoard shows images without captions; the text is drawn into the pixels (PIL's built-in
bitmap font, no font file needed).
"""

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

TITLES = ("image", "truth", "prediction")
LINE = 12  # pixels per text line (the built-in font is 11 px high)


def titled_grid(
    grid: torch.Tensor,
    class_names: list[str],
    colours: torch.Tensor,
    titles: Sequence[str] = TITLES,
    row_labels: Sequence[str] = (),
) -> torch.Tensor:
    """uint8 (3, H, W) grid of equal columns (image / truth / prediction by default) -> the same
    with a title row above and one legend line per class below (colour swatch and name);
    ``row_labels``: a caption at the top left of each row (rows of equal height)."""
    _, height, width = grid.shape
    column = width // len(titles)
    canvas = Image.new("RGB", (width, height + LINE * (1 + len(class_names))), (255, 255, 255))
    canvas.paste(Image.fromarray(grid.permute(1, 2, 0).numpy()), (0, LINE))
    draw = ImageDraw.Draw(canvas)
    for index, title in enumerate(titles):
        draw.text((index * column + 2, 0), title, fill=(0, 0, 0))
    row_height = height // max(len(row_labels), 1)
    for index, label in enumerate(row_labels):
        top = LINE + index * row_height
        draw.rectangle((0, top, 6 * len(label) + 4, top + LINE), fill=(255, 255, 255))
        draw.text((2, top), label, fill=(0, 0, 0))
    for index, name in enumerate(class_names):
        top = height + LINE * (1 + index)
        colour = tuple(int(c) for c in colours[index])
        draw.rectangle((2, top + 2, 10, top + 10), fill=colour, outline=(0, 0, 0))
        draw.text((14, top), name, fill=(0, 0, 0))
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1)
