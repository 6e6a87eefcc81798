"""Several loggers as one writer (``logger=[tensorboard,csv,mlflow]``).

The loop talks to one object with the subset of SummaryWriter's methods it uses (add_scalar,
add_text, add_image, add_figure, flush, close); this passes each call to every configured
logger, so they all receive the same scalars, texts and images. Hand-written because torch has
no such thing and Lightning's logger collection would bring Lightning.
"""

from typing import Any


class Writers:
    def __init__(self, writers: list[Any]) -> None:
        self.writers = list(writers)

    def add_scalar(self, tag: str, value: float, step: int | None = None) -> None:
        for writer in self.writers:
            writer.add_scalar(tag, value, step)

    def add_text(self, tag: str, text: str, step: int | None = None) -> None:
        for writer in self.writers:
            writer.add_text(tag, text, step)

    def add_image(self, tag: str, image: Any, step: int | None = None) -> None:
        """``image``: uint8 (3, H, W), as SummaryWriter takes it."""
        for writer in self.writers:
            writer.add_image(tag, image, step)

    def add_figure(self, tag: str, figure: Any, step: int | None = None) -> None:
        """A matplotlib figure, drawn once and passed on as an image (the figure is closed)."""
        from torch.utils.tensorboard._utils import figure_to_image

        self.add_image(tag, figure_to_image(figure, close=True), step)

    def flush(self) -> None:
        for writer in self.writers:
            writer.flush()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
