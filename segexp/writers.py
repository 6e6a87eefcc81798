"""Logger helpers: a do-nothing writer for `logger=none`."""

from typing import Any


class NullWriter:
    """Accepts every SummaryWriter call and does nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None
