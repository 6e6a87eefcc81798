"""Checking config values before any work starts: one clear line per mistake."""

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from segexp.config.encoders import check_encoder
from segexp.errors import SegexpError

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def validate(cfg: DictConfig) -> None:
    """One clear line per mistake, naming the key and the fix, before anything is built."""
    dataset = cfg.dataset
    if OmegaConf.is_missing(dataset, "root"):  # ("root" in dataset is False when it is ???)
        raise SegexpError("dataset.root is not set: add dataset.root=/path/to/your/data")
    if dataset.get("root") is not None and not Path(str(dataset.root)).is_dir():
        raise SegexpError(
            f"dataset.root={dataset.root} is not a folder: give the folder that holds "
            "your images and masks"
        )
    num_classes = int(dataset.num_classes)
    if num_classes < 2:
        raise SegexpError(f"dataset.num_classes={num_classes}: a binary problem is 2 classes")
    names = dataset.get("class_names")
    if names is not None and len(names) != num_classes:
        raise SegexpError(
            f"dataset.class_names has {len(names)} names but dataset.num_classes={num_classes}: "
            "give one name per class (or class_names=null)"
        )
    if 0 <= int(dataset.ignore_index) < num_classes:
        raise SegexpError(
            f"dataset.ignore_index={dataset.ignore_index} is a class index (num_classes="
            f"{num_classes}): use a value outside 0..{num_classes - 1}, e.g. 255"
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
    if cfg.trainer.precision not in PRECISIONS:
        raise SegexpError(
            f"trainer.precision={cfg.trainer.precision!r} is not one of {', '.join(PRECISIONS)}"
        )
    if int(cfg.trainer.epochs) < 1:
        raise SegexpError(f"trainer.epochs={cfg.trainer.epochs}: train for at least 1 epoch")
    if int(dataset.batch_size) < 1:
        raise SegexpError(f"dataset.batch_size={dataset.batch_size}: must be at least 1")
