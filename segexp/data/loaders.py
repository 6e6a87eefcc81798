"""Datasets and DataLoaders for the train, val and test splits, built from `cfg.dataset`.

- train: the training transform (aug.train) on image and mask, stacked batches (pad_collate).
- val: the evaluation transform (aug.eval) on image and mask: scored each epoch at the
  resolution the model works at, which is fast.
- test: the evaluation transform on the image only, the mask as stored: the final test pass
  scores at the labels' own resolution (data/sample.py EvaluationSamples), as segexp.evaluate.
Evaluation batches are lists (list_collate); see evaluation/loop.py.
"""

import functools
import itertools
import os
import signal
from dataclasses import dataclass

import cv2
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset, get_worker_info

from segexp.config.build import build
from segexp.data.collate import list_collate, pad_collate
from segexp.data.resize import with_resize
from segexp.data.sample import EvaluationSamples
from segexp.data.sampler import training_sampler
from segexp.errors import SegexpError
from segexp.runtime import distributed
from segexp.runtime.threads import available_cores


@dataclass
class Splits:
    """Iterables of (uint8 images, masks) batches and how many batches each yields per pass."""

    train: object
    val: object
    test: object
    train_batches: int
    val_batches: int
    test_batches: int


def _seed_augmentation(worker_id: int) -> None:
    """Give each worker its own augmentation stream.

    albumentations seeds its generators once, when the pipeline is built, so forked workers
    would otherwise all apply the same "random" transforms in lockstep.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the main process stops cleanly
    # One thread per worker: OpenCV's own pool in every worker oversubscribes the cores.
    cv2.setNumThreads(0)
    torch.set_num_threads(1)
    info = get_worker_info()
    transform = getattr(info.dataset, "transform", None)
    if transform is not None and hasattr(transform, "set_random_seed"):
        transform.set_random_seed(torch.initial_seed() % 2**32)


def num_workers(setting: int | str) -> int:
    """`dataset.num_workers`: a number, or auto: the cores this process may use (shared among
    torchrun's processes on the node) less one for the training process, at most 16."""
    if setting != "auto":
        return int(setting)
    per_process = available_cores() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(0, min(16, per_process - 1))


def _loader(dataset: Dataset, cfg: DictConfig, *, train: bool, seed: int, pin: bool) -> DataLoader:
    workers = num_workers(cfg.dataset.num_workers)
    generator = torch.Generator().manual_seed(seed)
    sampler = distributed.sampler(dataset, train=train, seed=seed)  # None in a single process
    choice = str(cfg.dataset.get("sampler") or "uniform")
    if train and choice != "uniform":
        if sampler is not None:
            raise SegexpError(
                f"dataset.sampler={choice} draws in a single process: use dataset.sampler=uniform "
                "with several processes (torchrun)"
            )
        sampler = training_sampler(dataset, choice, int(cfg.dataset.num_classes), generator)
    return DataLoader(
        dataset,
        batch_size=int(cfg.dataset.batch_size),
        shuffle=train and sampler is None,
        sampler=sampler,
        drop_last=train,
        num_workers=workers,
        pin_memory=pin,
        persistent_workers=workers > 0,
        worker_init_fn=_seed_augmentation,
        generator=generator,  # also the rare_class sampler's: one state to save and restore
        collate_fn=(
            functools.partial(pad_collate, ignore_index=int(cfg.dataset.ignore_index))
            if train
            else list_collate
        ),
    )


def _limit(num_batches: int, limit: int | None) -> int:
    return num_batches if limit is None else min(num_batches, int(limit))


def evaluation_transform(cfg: DictConfig):
    """The run's evaluation transform: dataset.eval_resize (or resize), then aug.eval; None
    when it has neither."""
    transform = build(cfg.aug.eval) if cfg.aug.get("eval") is not None else None
    return with_resize(transform, cfg.dataset, evaluation=True)


def training_transform(cfg: DictConfig):
    """The run's training transform: dataset.resize, then aug.train (crops come after)."""
    return with_resize(build(cfg.aug.train), cfg.dataset, evaluation=False)


def build_splits(cfg: DictConfig, pin_memory: bool = False) -> Splits:
    eval_tf = evaluation_transform(cfg)
    # trainer.overfit_batches: the same pixels every epoch, so no augmentation.
    train_tf = eval_tf if cfg.trainer.get("overfit_batches") else training_transform(cfg)
    if train_tf is not None and hasattr(train_tf, "set_random_seed"):
        train_tf.set_random_seed(int(cfg.seed))
    train_set = build(cfg.dataset.train, transform=train_tf)
    val_set = build(cfg.dataset.val, transform=eval_tf)
    test_set = EvaluationSamples(build(cfg.dataset.test), eval_tf)
    batch_size = int(cfg.dataset.batch_size)
    for split, dataset in (("train", train_set), ("val", val_set), ("test", test_set)):
        if len(dataset) == 0:
            raise SegexpError(f"the {split} split of dataset '{cfg.dataset.name}' is empty")
    if len(train_set) < batch_size:
        raise SegexpError(
            f"dataset.batch_size={batch_size} is larger than the train split ({len(train_set)} "
            "samples) and the last incomplete batch is dropped: lower dataset.batch_size"
        )
    seed, trainer = int(cfg.seed), cfg.trainer

    def loader(dataset: Dataset, train: bool = False) -> DataLoader:
        return _loader(dataset, cfg, train=train, seed=seed, pin=pin_memory)

    test = loader(test_set)
    if trainer.overfit_batches:
        # The course's sanity check: the same few batches for training and validation.
        # (not shuffled: the first batches, in order, with the training transform)
        fixed = list(itertools.islice(loader(train_set), int(trainer.overfit_batches)))
        ignore_index = int(cfg.dataset.ignore_index)
        stacked = [pad_collate(list(zip(*batch, strict=True)), ignore_index) for batch in fixed]
        return Splits(stacked, fixed, test, len(fixed), len(fixed), len(test))
    train, val = loader(train_set, train=True), loader(val_set)
    return Splits(
        train,
        val,
        test,
        _limit(len(train), trainer.limit_train_batches),
        _limit(len(val), trainer.limit_val_batches),
        len(test),
    )
