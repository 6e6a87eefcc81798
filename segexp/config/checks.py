"""Checking config values before any work starts: one clear line per mistake.

Each value's type and range is in the one table of config/schema.py (the trainer's: its object,
config/trainer.py); this module adds what they cannot say (the data folder, relations between
keys, encoder names)."""

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from segexp.config.encoders import check_encoder
from segexp.config.schema import check_schema
from segexp.config.trainer import trainer_settings
from segexp.errors import SegexpError


def validate(cfg: DictConfig) -> None:
    """One clear line per mistake, naming the key and the fix, before anything is built."""
    check_schema(cfg)
    trainer_settings(cfg.trainer)
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
    check_encoder(cfg.model.net)
