"""Datasets and DataLoaders for the train, val and test splits, built from `cfg.dataset`.

- train: the training transform (aug.train) on image and mask, stacked batches (pad_collate).
- val: the evaluation transform (aug.eval) on image and mask: scored each epoch at the
  resolution the model works at, which is fast.
- test: the evaluation transform on the image only, the mask as stored: the final test pass
  scores at the labels' own resolution (data/sample.py EvaluationSamples), as segexp.evaluate.
Evaluation batches are lists (list_collate); see evaluation/loop.py.
"""

import dataclasses
import functools
import itertools
import os
import random
import signal

import cv2
import numpy as np
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


@dataclasses.dataclass
class Splits:
    """Iterables of (uint8 images, masks) batches and how many batches each yields per pass."""

    train: object
    val: object
    test: object
    train_batches: int
    val_batches: int
    test_batches: int
    augmentation: object = None  # the train split's random transform (its stream: resume.py)

    def limited(self, train: int | None, val: int | None) -> "Splits":
        """At most ``train`` / ``val`` batches per pass (None: all)."""
        return dataclasses.replace(
            self,
            train_batches=self.train_batches if train is None else min(self.train_batches, train),
            val_batches=self.val_batches if val is None else min(self.val_batches, val),
        )


def samples_in(batches, num_batches: int) -> int:
    """The samples a pass over the first ``num_batches`` of ``batches`` sees: of a DataLoader
    (this process's share under torchrun), or of a list of batches (``fixed_batches``)."""
    if isinstance(batches, DataLoader):
        return min(num_batches * int(batches.batch_size), len(batches.sampler))
    return sum(len(images) for images, _ in batches[:num_batches])


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
    seed_transform(getattr(info.dataset, "transform", None), torch.initial_seed() % 2**32)


def seed_transform(transform, seed: int) -> None:
    """One random stream for a whole albumentations pipeline, seeded: every transform in it draws
    from the pipeline's two generators (albumentations' set_random_seed would give each transform
    its own generators with the same seed, whose draws move in lockstep), so a checkpoint holds
    the pipeline's state whole (training/resume.py). Anything else is left as it is."""
    if transform is not None and hasattr(transform, "set_random_state"):
        transform.set_random_state(np.random.default_rng(seed), random.Random(seed))


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


def evaluation_transform(cfg: DictConfig):
    """The run's evaluation transform: dataset.eval_resize (or resize), then aug.eval; None
    when it has neither."""
    transform = build(cfg.aug.eval) if cfg.aug.get("eval") is not None else None
    return with_resize(transform, cfg.dataset, evaluation=True)


def training_transform(cfg: DictConfig):
    """The run's training transform: dataset.resize, then aug.train (crops come after)."""
    return with_resize(build(cfg.aug.train), cfg.dataset, evaluation=False)


def _datasets(cfg: DictConfig, train_transform) -> tuple[Dataset, Dataset, Dataset]:
    """The three splits' datasets, checked for what batching needs."""
    seed_transform(train_transform, int(cfg.seed))
    train_set = build(cfg.dataset.train, transform=train_transform)
    val_set = build(cfg.dataset.val, transform=evaluation_transform(cfg))
    test_set = EvaluationSamples(build(cfg.dataset.test), evaluation_transform(cfg))
    batch_size = int(cfg.dataset.batch_size)
    for split, dataset in (("train", train_set), ("val", val_set), ("test", test_set)):
        if len(dataset) == 0:
            raise SegexpError(f"the {split} split of dataset '{cfg.dataset.name}' is empty")
    if len(train_set) < batch_size:
        raise SegexpError(
            f"dataset.batch_size={batch_size} is larger than the train split ({len(train_set)} "
            "samples) and the last incomplete batch is dropped: lower dataset.batch_size"
        )
    return train_set, val_set, test_set


def build_splits(cfg: DictConfig, pin_memory: bool = False) -> Splits:
    """Every split as configured: the training transform and sampler on train."""
    augmentation = training_transform(cfg)
    train_set, val_set, test_set = _datasets(cfg, augmentation)
    seed = int(cfg.seed)
    train = _loader(train_set, cfg, train=True, seed=seed, pin=pin_memory)
    val = _loader(val_set, cfg, train=False, seed=seed, pin=pin_memory)
    test = _loader(test_set, cfg, train=False, seed=seed, pin=pin_memory)
    return Splits(train, val, test, len(train), len(val), len(test), augmentation)


def fixed_batches(cfg: DictConfig, count: int, pin_memory: bool = False) -> Splits:
    """The course's sanity check: the first ``count`` training batches, in order and without
    augmentation, are both the train split (stacked) and the val split (lists)."""
    train_set, _, test_set = _datasets(cfg, evaluation_transform(cfg))
    seed = int(cfg.seed)
    in_order = _loader(train_set, cfg, train=False, seed=seed, pin=pin_memory)
    fixed = list(itertools.islice(in_order, count))
    ignore_index = int(cfg.dataset.ignore_index)
    stacked = [pad_collate(list(zip(*batch, strict=True)), ignore_index) for batch in fixed]
    test = _loader(test_set, cfg, train=False, seed=seed, pin=pin_memory)
    return Splits(stacked, fixed, test, len(fixed), len(fixed), len(test))
