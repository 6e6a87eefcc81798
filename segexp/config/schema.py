"""The one table of what each config value may be: type and range, checked before any work.
(The trainer's settings are an object with their own ranges: config/trainer.py.)

Each rule names a key (``*`` matches any one key, so a rule covers e.g. every loss term) and
what the value must be; a wrong value is one line naming the key, the value and what is
allowed. Keys that are absent in the composed config (an optimizer without momentum) are not
checked. Relations between keys (class names per class, mean per channel, ...) are checked in
config/checks.py after this table.
"""

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from segexp.errors import SegexpError

Check = Callable[[Any, DictConfig], bool]


@dataclass(frozen=True)
class Rule:
    key: str
    allowed: str  # what the error says is allowed
    ok: Check


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _numbers(value: Any, low: float) -> bool:
    return isinstance(value, list) and all(_number(v) and v >= low for v in value)


def number(low: float | None = None, *, above: float | None = None, null: bool = False) -> Check:
    def ok(value: Any, cfg: DictConfig) -> bool:
        if value is None:
            return null
        return _number(value) and (low is None or value >= low) and (above is None or value > above)

    return ok


def integer(low: int | None = None, high: int | None = None, null: bool = False) -> Check:
    def ok(value: Any, cfg: DictConfig) -> bool:
        if value is None:
            return null
        return _integer(value) and (low is None or value >= low) and (high is None or value <= high)

    return ok


def auto_or(check: Check) -> Check:
    return lambda value, cfg: value == "auto" or check(value, cfg)


def one_of(*values: Any) -> Check:
    return lambda value, cfg: value in values


def boolean(value: Any, cfg: DictConfig) -> bool:
    return isinstance(value, bool)


def fraction(value: Any, cfg: DictConfig) -> bool:
    return _number(value) and 0 <= value <= 1


def betas(value: Any, cfg: DictConfig) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(_number(v) and 0 <= v < 1 for v in value)
    )


def size(value: Any, cfg: DictConfig) -> bool:
    """[height, width] of positive integers, or null (whole images)."""
    return value is None or (
        isinstance(value, list) and len(value) == 2 and all(_integer(v) and v >= 1 for v in value)
    )


def per_class(value: Any, cfg: DictConfig) -> bool:
    """null, "auto", or one positive number per class."""
    if value is None or value == "auto":
        return True
    n = cfg.dataset.get("num_classes")
    return isinstance(value, list) and len(value) == n and all(_number(v) and v > 0 for v in value)


def ignore_index(value: Any, cfg: DictConfig) -> bool:
    """A mask value that is not a class: masks are 8-bit maps, padding is filled with it."""
    n = cfg.dataset.get("num_classes")
    return _integer(value) and _integer(n) and n <= value <= 255


def folder(value: Any, cfg: DictConfig) -> bool:
    return value is None or (isinstance(value, str) and not Path(value).is_file())


RULES = [
    Rule("seed", "an integer", integer()),
    Rule("resume", "null or a run folder (not a file)", folder),
    Rule("dataset.num_classes", "an integer >= 2", integer(2)),
    Rule(
        "dataset.ignore_index",
        "an integer from num_classes to 255 (not a class index), e.g. 255",
        ignore_index,
    ),
    Rule("dataset.in_channels", "1 or 3", one_of(1, 3)),
    Rule("dataset.mean", "one number per channel, 0-255 scale", lambda v, c: _numbers(v, 0)),
    Rule("dataset.std", "one number > 0 per channel, 0-255 scale", lambda v, c: _numbers(v, 1e-12)),
    Rule("dataset.image_size", "[height, width], both integers >= 1, or null", size),
    Rule("dataset.batch_size", "an integer >= 1", integer(1)),
    Rule("dataset.num_workers", "auto or an integer >= 0", auto_or(integer(0))),
    Rule("dataset.sampler", "uniform or rare_class", one_of("uniform", "rare_class")),
    Rule("dataset.mask_mode", "index, binary or color", one_of("index", "binary", "color")),
    Rule("dataset.binary_masks", "true or false", boolean),
    Rule("dataset.lossy_masks", "true or false", boolean),
    Rule("dataset.uint16_scale", "full or per_image", one_of("full", "per_image")),
    Rule("dataset.cache", "true or false", boolean),
    Rule("dataset.*.num_samples", "an integer >= 1", integer(1)),
    Rule("dataset.split_by", "folders, lists or random", one_of("folders", "lists", "random")),
    Rule("dataset.split_fractions.*", "a number from 0 to 1", fraction),
    Rule("dataset.split_seed", "an integer", integer()),
    Rule("dataset.data_seed", "an integer", integer()),
    Rule("model.size_multiple", "an integer >= 1", integer(1)),
    Rule("model.freeze_encoder_epochs", "an integer >= 0", integer(0)),
    Rule("model.encoder_lr_mult", "a number >= 0", number(0)),
    Rule("model.aux_loss_weight", "a number >= 0", number(0)),
    Rule(
        "model.net.depth", "an integer >= 1, or auto (from the training crop)", auto_or(integer(1))
    ),
    Rule("model.net.base_channels", "an integer >= 1", integer(1)),
    Rule("optimizer.lr", "a number > 0, e.g. 1e-3", number(above=0)),
    Rule("optimizer.weight_decay", "a number >= 0", number(0)),
    Rule("optimizer.momentum", "a number >= 0", number(0)),
    Rule("optimizer.betas", "two numbers from 0 to below 1, e.g. [0.9, 0.999]", betas),
    Rule("optimizer.nesterov", "true or false", boolean),
    Rule("scheduler.warmup_steps", "an integer >= 0", integer(0)),
    Rule("scheduler.power", "a number > 0", number(above=0)),
    Rule("scheduler.min_lr_ratio", "a number from 0 to 1", fraction),
    Rule("loss.class_weights", "null, auto, or one positive number per class", per_class),
    Rule("loss.losses.*.class_weights", "null, auto, or one positive number per class", per_class),
    Rule("loss.weights.*", "a number >= 0", number(0)),
    Rule("loss.label_smoothing", "a number from 0 to 1", fraction),
    Rule("loss.losses.*.label_smoothing", "a number from 0 to 1", fraction),
    Rule("loss.gamma", "a number >= 0", number(0)),
    Rule("loss.losses.*.gamma", "a number >= 0", number(0)),
    Rule(
        "metrics.boundary_tolerance",
        "a number > 0 (pixels, or below 1 a fraction of the diagonal)",
        number(above=0),
    ),
]


def _values(node: Any, parts: list[str], prefix: str) -> Iterator[tuple[str, Any]]:
    if not parts:
        yield prefix, node
        return
    if not isinstance(node, DictConfig):
        return
    head, rest = parts[0], parts[1:]
    keys = [k for k in node if not str(k).startswith("_")] if head == "*" else [head]
    for key in keys:
        if key in node and not OmegaConf.is_missing(node, key):
            yield from _values(node[key], rest, f"{prefix}.{key}" if prefix else str(key))


def check_schema(cfg: DictConfig) -> None:
    """Every rule of ``RULES`` against ``cfg``: the first wrong value is a SegexpError."""
    for rule in RULES:
        for key, value in _values(cfg, rule.key.split("."), ""):
            if isinstance(value, DictConfig | ListConfig):
                value = OmegaConf.to_container(value, resolve=True)
            if not rule.ok(value, cfg):
                raise SegexpError(f"{key}={value!r} is not allowed: give {rule.allowed}")
