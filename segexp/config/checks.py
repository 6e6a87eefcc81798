"""Checking the whole composed config before any work starts: one clear line per mistake.

``validate`` is the one place: each value's type and range is in the table of config/schema.py
(the trainer's: its object, config/trainer.py); every node that builds an object has its keys
checked against its constructor and the cheap ones are built (config/nodes.py); this module adds
what those cannot say (keys renamed since an earlier version, the data folder, relations between
keys, the palette, encoder names)."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from segexp.config.encoders import check_encoder
from segexp.config.legacy import renamed_key, renamed_key_message
from segexp.config.nodes import check_nodes
from segexp.config.schema import check_schema
from segexp.config.trainer import trainer_settings
from segexp.errors import SegexpError


def validate(cfg: DictConfig) -> None:
    """One clear line per mistake, naming the key and the fix, before anything is built."""
    check_renamed_keys(cfg)
    check_schema(cfg)
    trainer_settings(cfg.trainer)
    check_nodes(cfg)
    dataset = cfg.dataset
    if OmegaConf.is_missing(dataset, "root"):  # ("root" in dataset is False when it is ???)
        raise SegexpError("dataset.root is not set: add dataset.root=/path/to/your/data")
    if dataset.get("root") is not None and not Path(str(dataset.root)).is_dir():
        raise SegexpError(
            f"dataset.root={dataset.root} is not a folder: give the folder that holds "
            "your images and masks"
        )
    num_classes = int(dataset.num_classes)
    names = dataset.get("class_names")
    if names is not None and len(names) != num_classes:
        raise SegexpError(
            f"dataset.class_names has {len(names)} names but dataset.num_classes={num_classes}: "
            "give one name per class (or class_names=null)"
        )
    for key in ("mean", "std"):
        if len(dataset[key]) != int(dataset.in_channels):
            raise SegexpError(
                f"dataset.{key} has {len(dataset[key])} values but dataset.in_channels="
                f"{dataset.in_channels}: give one value per channel"
            )
    model_channels = cfg.model.net.get("in_channels")
    if model_channels is not None and int(model_channels) != int(dataset.in_channels):
        raise SegexpError(
            f"model.net.in_channels={model_channels} but the data has dataset.in_channels="
            f"{dataset.in_channels}: drop the model.net.in_channels override (it follows the "
            "dataset) or set dataset.in_channels to match"
        )
    check_palette(dataset.get("palette"), num_classes)
    check_encoder(cfg.model.net)


def _keys(node: Any, path: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for key, child in node.items():
            full = f"{path}.{key}" if path else str(key)
            yield full
            yield from _keys(child, full)


def check_renamed_keys(cfg: DictConfig) -> None:
    """A key renamed since an earlier version, in a config file or added with ``+key=``."""
    for key in _keys(OmegaConf.to_container(cfg, resolve=False)):
        if renamed_key(key):
            raise SegexpError(renamed_key_message(key))


def check_palette(given: Any, num_classes: int) -> list[list[int]] | None:
    """``dataset.palette``: null, or one [r, g, b] of integers 0-255 per class; returns it as
    plain lists. The first wrong entry is named."""
    if given is None:
        return None
    colours = OmegaConf.to_container(given) if isinstance(given, ListConfig) else given
    if not isinstance(colours, list | tuple):
        raise SegexpError(f"dataset.palette={given}: give a list of [r, g, b], one per class")
    for i, colour in enumerate(colours):
        channels = colour if isinstance(colour, list | tuple) else []
        if len(channels) != 3 or not all(_byte(v) for v in channels):
            raise SegexpError(
                f"dataset.palette[{i}]={colour}: give [r, g, b], three integers from 0 to 255"
            )
    if len(colours) != num_classes:
        raise SegexpError(
            f"dataset.palette has {len(colours)} colours but dataset.num_classes={num_classes}: "
            "give one [r, g, b] per class"
        )
    return [list(colour) for colour in colours]


def _byte(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255
