"""Several loggers as one writer (``logger=[tensorboard,csv,mlflow]``).

The loop talks to one object with the subset of SummaryWriter's methods it uses (add_scalar,
add_text, add_image, add_figure, flush, close); this passes each call to every configured
logger, so they all receive the same scalars, texts and images. Hand-written because torch has
no such thing and Lightning's logger collection would bring Lightning.

Every call to a logger goes through ``each``, the one guard: logs are a record of the run, never
a reason to lose it. A logger that raises is named in one warning line and in ``errors``
(summary.json ``logger_errors``); it receives nothing more but ``close`` (so that what it holds
reaches its store), and the other loggers and the run go on. A run that trained and tested stays
``completed`` whatever its loggers do at the end; an MLflow server that stops answering costs
its metrics, not the training (and no further calls wait on it).
"""

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def _reason(err: Exception) -> str:
    """The error's type and first line (MLflow's messages go on for a page)."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


class Writers:
    def __init__(self, writers: dict[str, Any]) -> None:
        """``writers``: each logger under its name in the ``logger`` config group."""
        self.named = dict(writers)
        self.errors: list[dict[str, str]] = []  # the first failure of each logger that failed

    @property
    def failed(self) -> set[str]:
        return {error["logger"] for error in self.errors}

    @property
    def writers(self) -> list[Any]:
        """The loggers still receiving calls."""
        failed = self.failed
        return [writer for name, writer in self.named.items() if name not in failed]

    def each(self, call: str, action: Callable[[Any], object]) -> None:
        """``action(logger)`` for every logger still receiving calls (``close``: for every
        logger); ``call`` names it in a failure."""
        failed = self.failed
        for name, writer in self.named.items():
            if name in failed and call != "close":
                continue
            try:
                action(writer)
            except Exception as err:  # any logger's own error; signals are BaseException
                if name in failed:
                    log.debug("logger %s failed again in %s: %s", name, call, _reason(err))
                    continue
                self.errors.append({"logger": name, "call": call, "error": _reason(err)})
                log.warning(
                    "logger %s failed in %s and receives nothing more in this run (the run and "
                    "the other loggers go on): %s",
                    name, call, _reason(err),
                )  # fmt: skip

    def add_scalar(self, tag: str, value: float, step: int | None = None) -> None:
        self.each("add_scalar", lambda writer: writer.add_scalar(tag, value, step))

    def add_text(self, tag: str, text: str, step: int | None = None) -> None:
        self.each("add_text", lambda writer: writer.add_text(tag, text, step))

    def add_image(self, tag: str, image: Any, step: int | None = None) -> None:
        """``image``: uint8 (3, H, W), as SummaryWriter takes it."""
        self.each("add_image", lambda writer: writer.add_image(tag, image, step))

    def add_figure(self, tag: str, figure: Any, step: int | None = None) -> None:
        """A matplotlib figure, drawn once and passed on as an image (the figure is closed)."""
        from torch.utils.tensorboard._utils import figure_to_image

        self.add_image(tag, figure_to_image(figure, close=True), step)

    def flush(self) -> None:
        self.each("flush", lambda writer: writer.flush())

    def close(self) -> None:
        self.each("close", lambda writer: writer.close())
