"""Building objects from config nodes: Hydra's instantiate, with segexp's own errors kept whole."""

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from segexp.errors import SegexpError


def build(node: DictConfig | None, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, but a SegexpError raised inside a constructor reaches the user
    as itself rather than wrapped in Hydra's InstantiationException."""
    if node is None:
        return None
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        while isinstance(cause, InstantiationException):  # nested nodes (model.net) wrap twice
            cause = cause.__cause__
        if isinstance(cause, SegexpError):
            raise cause from None
        raise


def class_names(dataset: DictConfig) -> list[str]:
    names = dataset.get("class_names")
    return [str(i) for i in range(int(dataset.num_classes))] if names is None else list(names)
