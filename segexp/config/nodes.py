"""Every node of the composed config that builds an object, checked before any work.

The value schema (config/schema.py) knows the keys segexp reads; a node with a ``_target_`` holds
its constructor's arguments, which only the constructor knows. So, for every such node: each key
must be a parameter of its constructor (a misspelt ``test.inference.tile_bach`` or
``logger.mlflow.tracking_url`` is named, with the parameters it takes), and the nodes that can be
built without side effects are built once, so that a constructor's own check of a value
(``test.inference.tta=flp``) speaks now rather than after training.
"""

import difflib
import inspect
import re
from collections.abc import Iterator
from typing import Any

from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

from segexp.config.build import build
from segexp.errors import SegexpError

# Built once by ``check_nodes``: cheap, and they write nothing (loggers, datasets and models do,
# or cost seconds, so only their keys are checked).
BUILT_EARLY = ("aug.train", "aug.eval", "aug.device", "test.inference", "test.postprocess")
HYDRA_KEYS = {"_target_", "_partial_", "_args_", "_recursive_", "_convert_"}


def _nodes(node: Any, path: str) -> Iterator[tuple[str, dict]]:
    """(path, node) of every node with a ``_target_`` in a plain container, depth first."""
    if isinstance(node, dict):
        if "_target_" in node:
            yield path, node
        children = node.items()
    elif isinstance(node, list):
        children = enumerate(node)
    else:
        return
    for key, child in children:
        yield from _nodes(child, f"{path}.{key}" if path else str(key))


def _parameters(target: Any) -> list[str] | None:
    """The keyword parameters ``target`` takes; None when it takes any (``**kwargs``) or cannot
    be inspected."""
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in parameters if p.kind in kinds]


def check_constructor_keys(cfg: DictConfig) -> None:
    """Each key of each ``_target_`` node is a parameter of that constructor."""
    for path, node in _nodes(OmegaConf.to_container(cfg, resolve=False), ""):
        target = node["_target_"]
        if not isinstance(target, str) or "${" in target:
            continue  # an interpolation: the constructor is known only when it is resolved
        try:
            constructor = get_object(str(target))
        except Exception as err:  # Hydra raises ImportError, or its own error, for a bad path
            raise SegexpError(
                f"{path}._target_={target} cannot be imported ({type(err).__name__}): check "
                "the module and name"
            ) from None
        accepted = _parameters(constructor)
        if accepted is None:
            continue
        for key in node:
            if key in HYDRA_KEYS or key in accepted:
                continue
            close = difflib.get_close_matches(str(key), accepted, n=1)
            hint = f"did you mean {path}.{close[0]}? " if close else ""
            raise SegexpError(
                f"{path}.{key}: {target} takes no argument '{key}'; {hint}it takes "
                f"{', '.join(accepted) or 'none'}"
            )


def check_built_early(cfg: DictConfig) -> None:
    """Build the nodes of ``BUILT_EARLY`` once and drop them: a constructor's own check of a
    value is one line naming the node."""
    for path in BUILT_EARLY:
        node = OmegaConf.select(cfg, path)
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        try:
            build(node)
        except SegexpError as err:
            raise SegexpError(f"{path}: {err}") from None
        except Exception as err:  # e.g. albumentations' pydantic check of a transform argument
            raise SegexpError(f"{path}: {_one_line(err)}") from None


def _one_line(err: BaseException) -> str:
    """The innermost cause of an instantiation error, on one line, with the class it came from."""
    inner = err
    while inner.__cause__ is not None:
        inner = inner.__cause__
    lines = [line.strip() for line in str(inner).splitlines()]
    text = " ".join(line for line in lines if line and not line.startswith("For further info"))
    where = re.search(r"Error in call to target '([\w.]+)'", str(err))
    return f"{where.group(1).rsplit('.', 1)[-1]}: {text}" if where else text


def check_nodes(cfg: DictConfig) -> None:
    check_constructor_keys(cfg)
    check_built_early(cfg)
