"""TensorBoard's writer, with one-value results filed after the curves.

TensorBoard orders a dashboard's groups (a tag's first path part) by name and opens the first
two. Results measured once at the end (``final/...``: final metrics, the test confusion matrix)
would come first and open as one-point charts, so this writer files them under ``~final/``,
which sorts after every letter. The other loggers keep ``final/`` (MLflow refuses ``~``).
"""

from typing import Any

from torch.utils.tensorboard import SummaryWriter

FINAL_GROUP = "final/"
SORTED_LAST = "~final/"


def tensorboard_tag(tag: str) -> str:
    return SORTED_LAST + tag.removeprefix(FINAL_GROUP) if tag.startswith(FINAL_GROUP) else tag


class TensorBoardWriter(SummaryWriter):
    def add_scalar(self, tag: str, scalar_value: Any, *args: Any, **kwargs: Any) -> None:
        super().add_scalar(tensorboard_tag(tag), scalar_value, *args, **kwargs)

    def add_image(self, tag: str, img_tensor: Any, *args: Any, **kwargs: Any) -> None:
        super().add_image(tensorboard_tag(tag), img_tensor, *args, **kwargs)
