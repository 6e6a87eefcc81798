"""The run's loaders: augmentation policies, evaluation that is never random, workers, sampler.

Augmentation: image and mask move together, colour touches the image only, padding is
ignore_index, evaluation is never random.

The alignment check draws the mask from the image itself: every class is painted in its own
grey level, so after any geometric transform the class can be read back from the image and
compared with the transformed mask.
"""

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from omegaconf import open_dict

from segexp.config.build import build
from segexp.data import loaders
from segexp.data.loaders import build_splits, fixed_batches, num_workers
from tests.conftest import TINY, compose_config

POLICIES = ("none", "light", "strong")

LEVELS = np.array([60, 130, 200], np.uint8)  # grey level of classes 0, 1, 2; 0 = padding/holes


def flat(transforms):
    for t in transforms:
        if isinstance(t, A.OneOf | A.SomeOf | A.Compose):
            yield from flat(t.transforms)
        else:
            yield t


def policy(name: str, size=64):
    cfg = compose_config([f"aug={name}", f"dataset.image_size=[{size},{size}]"])
    return cfg, build(cfg.aug.train)


def scene(seed: int, size=96):
    rng = np.random.default_rng(seed)
    mask = np.kron(rng.integers(0, 3, (size // 12, size // 12)), np.ones((12, 12), np.int64))
    image = np.repeat(LEVELS[mask][..., None], 3, axis=2)
    return image, mask.astype(np.uint8)


def agreement(image: np.ndarray, mask: np.ndarray) -> tuple[float, int]:
    """Share of pixels whose grey level names the mask's class, among clean pixels (not padding,
    not a blend across a class border, not ignore)."""
    grey = image[..., 0].astype(np.int64)
    read = np.abs(grey[..., None] - LEVELS.astype(np.int64)).argmin(-1)
    clean = (np.abs(grey - LEVELS[read].astype(np.int64)) <= 2) & (mask != 255)
    return float((read[clean] == mask[clean]).mean()), int(clean.sum())


def run(transform, seed: int):
    image, mask = scene(seed)
    out = A.Compose([transform], seed=seed)(image=image, mask=mask)
    return image, mask, out["image"], out["mask"]


@pytest.mark.parametrize("name", POLICIES)
def test_every_transform_keeps_image_and_mask_aligned(name):
    _, pipeline = policy(name)
    for transform in flat(pipeline.transforms):
        transform.p = 1.0
        for seed in range(3):
            image, mask, new_image, new_mask = run(transform, seed)
            assert new_mask.shape == new_image.shape[:2], transform
            assert set(np.unique(new_mask)) <= set(np.unique(mask)) | {255}, transform
            if isinstance(transform, A.ImageOnlyTransform):
                assert np.array_equal(new_mask, mask), f"{transform} changed the mask"
                assert not np.array_equal(new_image, image), f"{transform} did nothing"
            else:
                share, clean = agreement(new_image, new_mask)
                assert clean > 0.3 * new_mask.size, transform
                assert share > 0.99, f"{transform}: image and mask agree on only {share:.3f}"


@pytest.mark.parametrize("name", POLICIES)
def test_whole_geometric_pipeline_keeps_alignment(name):
    _, pipeline = policy(name)
    geometric = [t for t in flat(pipeline.transforms) if not isinstance(t, A.ImageOnlyTransform)]
    for t in geometric:
        t.p = 1.0
    for seed in range(4):
        image, mask = scene(seed)
        out = A.Compose(geometric, seed=seed)(image=image, mask=mask)
        share, clean = agreement(out["image"], out["mask"])
        assert clean > 0.3 * out["mask"].size and share > 0.99


def test_a_misaligned_mask_is_caught():
    image, mask = scene(0)
    share, _ = agreement(np.ascontiguousarray(image[:, ::-1]), mask)
    assert share < 0.8  # the check above has teeth


@pytest.mark.parametrize("name", POLICIES)
def test_masks_use_nearest_neighbour_and_pad_with_ignore_index(name):
    cfg, pipeline = policy(name, size=32)
    for t in flat(pipeline.transforms):
        if hasattr(t, "mask_interpolation"):
            assert t.mask_interpolation == cv2.INTER_NEAREST, t
        if hasattr(t, "fill_mask") and not isinstance(t, A.CoarseDropout):
            assert t.fill_mask == cfg.dataset.ignore_index, t
    crop = next(t for t in pipeline.transforms if isinstance(t, A.RandomCrop))
    out = A.Compose([crop])(
        image=np.full((20, 24, 3), 9, np.uint8), mask=np.ones((20, 24), np.uint8)
    )
    assert out["mask"].shape == (32, 32)
    assert (out["mask"] == 255).sum() == 32 * 32 - 20 * 24 and (out["mask"] == 1).sum() == 20 * 24


def test_rotation_padding_is_ignored_in_the_mask():
    cfg, pipeline = policy("light")
    affine = next(t for t in pipeline.transforms if isinstance(t, A.Affine))
    image, mask = scene(1)
    out = A.Compose([A.Affine(rotate=(45, 45), fill_mask=affine.fill_mask, p=1)])(
        image=image, mask=mask
    )
    assert out["mask"][0, 0] == cfg.dataset.ignore_index and out["image"][0, 0, 0] == 0


def test_light_is_the_course_set_and_strong_adds_photometric_and_distortions():
    _, light = policy("light")
    kinds = {type(t) for t in flat(light.transforms)}
    assert {A.RandomCrop, A.HorizontalFlip, A.Affine} <= kinds
    affine = next(t for t in light.transforms if isinstance(t, A.Affine))
    assert affine.rotate == (-15, 15) and affine.scale == {"x": (0.9, 1.1), "y": (0.9, 1.1)}
    assert affine.translate_percent == {"x": (-0.1, 0.1), "y": (-0.1, 0.1)}
    _, strong = policy("strong")
    extra = {type(t) for t in flat(strong.transforms)} - kinds
    assert {A.ColorJitter, A.GaussianBlur, A.GaussNoise, A.CoarseDropout} <= extra
    assert extra & {A.ElasticTransform, A.GridDistortion}
    _, none = policy("none")
    assert [type(t) for t in none.transforms] == [A.RandomCrop]


@pytest.mark.parametrize("name", POLICIES)
def test_validation_is_never_random(name):
    cfg = compose_config([*TINY, f"aug={name}", "dataset.val.num_samples=4"])
    assert cfg.aug.eval is None
    splits = build_splits(cfg)
    first = [torch.cat([t.flatten() for t in [*i, *m]]) for i, m in splits.val]  # list batches
    second = [torch.cat([t.flatten() for t in [*i, *m]]) for i, m in splits.val]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    raw = splits.val.dataset.load(0)[0]
    assert torch.equal(splits.val.dataset[0][0], torch.from_numpy(raw).permute(2, 0, 1))


def test_num_workers_auto_leaves_a_core_for_training(monkeypatch):
    monkeypatch.setattr(loaders, "available_cores", lambda: 16)
    assert num_workers("auto") == 15 and num_workers(3) == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert num_workers("auto") == 3
    monkeypatch.setattr(loaders, "available_cores", lambda: 1)
    assert num_workers("auto") == 0


def test_rare_class_sampler_draws_with_the_loader_generator_that_resume_saves():
    cfg = compose_config([*TINY, "dataset=synthetic_imbalanced", "dataset.sampler=rare_class"])
    splits = build_splits(cfg)
    assert splits.train.sampler.generator is splits.train.generator
    state = splits.train.generator.get_state()
    order = list(iter(splits.train.batch_sampler))
    splits.train.generator.set_state(state)
    assert list(iter(splits.train.batch_sampler)) == order


def test_the_data_layer_needs_no_trainer_settings(tiny_config):
    cfg = tiny_config()
    with open_dict(cfg):
        del cfg["trainer"]  # what the loop decides (limits, overfitting) is not the data's
    splits = build_splits(cfg)
    assert (splits.train_batches, splits.val_batches, splits.test_batches) == (4, 2, 2)
    limited = splits.limited(train=3, val=None)
    assert (limited.train_batches, limited.val_batches, limited.train) == (3, 2, splits.train)
    fixed = fixed_batches(cfg, 2)
    assert fixed.train_batches == fixed.val_batches == len(fixed.train) == 2
    images, masks = fixed.train[0]  # stacked, and the same samples as the val lists
    assert images.shape == (4, 3, 32, 32) and len(fixed.val[0][0]) == 4
    assert (images[0] == fixed.val[0][0][0]).all() and (masks[0] == fixed.val[0][1][0]).all()
