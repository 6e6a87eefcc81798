"""Work that is not repeated, the thread policy and the checks behind issue 14's speed-ups."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from segexp.config.trainer import trainer_settings
from segexp.data import checks, loaders
from segexp.data.collate import pad_collate
from segexp.data.device_aug import DevicePhotometric
from segexp.data.loaders import build_splits, num_workers
from segexp.errors import SegexpError
from segexp.losses.dice import soft_dice_per_class
from segexp.runtime.device import make_device
from segexp.runtime.threads import auto_threads, resolve_threads
from segexp.storage.checkpoint import load_checkpoint
from segexp.training.fit import fit
from segexp.training.resume import save_epoch

from .conftest import TINY_RUN, compose_config


def test_best_is_a_link_to_last_not_a_second_serialisation(tmp_path, monkeypatch):
    calls = []
    original = torch.save
    monkeypatch.setattr(torch, "save", lambda *a, **k: (calls.append(1), original(*a, **k)))
    save_epoch({"epoch": 2, "w": torch.ones(3)}, tmp_path, improved=True, keep_every=2)
    assert len(calls) == 1
    last, best, kept = tmp_path / "last.pt", tmp_path / "best.pt", tmp_path / "epoch_0002.pt"
    assert os.path.samefile(last, best) and os.path.samefile(last, kept)
    save_epoch({"epoch": 3, "w": torch.zeros(3)}, tmp_path, improved=False, keep_every=2)
    # last.pt was replaced by a new file; best.pt still holds epoch 2
    assert load_checkpoint(best)["epoch"] == 2 and load_checkpoint(last)["epoch"] == 3
    assert not os.path.samefile(last, best)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "epoch_0002.pt", "last.pt"]


def test_dice_with_bool_one_hot_matches_the_int64_one_hot_formula():
    torch.manual_seed(0)
    probabilities = torch.rand(2, 4, 5, 6).softmax(1)
    target = torch.randint(0, 4, (2, 5, 6))
    target[0, 0] = 255
    dice, present = soft_dice_per_class(probabilities, target, ignore_index=255)
    valid = target != 255
    one_hot = torch.nn.functional.one_hot(torch.where(valid, target, 0), 4).movedim(-1, 1)
    one_hot = one_hot * valid.unsqueeze(1)
    p = probabilities * valid.unsqueeze(1)
    expected = 2 * (p * one_hot).sum((0, 2, 3)) / (p.sum((0, 2, 3)) + one_hot.sum((0, 2, 3)))
    torch.testing.assert_close(dice, expected)
    assert present.tolist() == (one_hot.sum((0, 2, 3)) > 0).tolist()


def test_collate_stacks_equal_sizes_and_pads_only_smaller_ones():
    same = [(torch.ones(3, 4, 4, dtype=torch.uint8), torch.zeros(4, 4)) for _ in range(2)]
    images, masks = pad_collate(same)
    assert images.shape == (2, 3, 4, 4) and (masks == 0).all()
    mixed = [same[0], (torch.ones(3, 2, 4, dtype=torch.uint8), torch.zeros(2, 4))]
    _, masks = pad_collate(mixed, ignore_index=9)
    assert (masks[1, 2:] == 9).all() and (masks[1, :2] == 0).all()


@pytest.mark.parametrize(
    ("cores", "load", "processes", "threads"),
    [
        (2, 0.1, 1, 2),  # quiet: every core
        (2, 1.2, 1, 1),  # one core busy elsewhere
        (2, 7.5, 1, 1),  # oversubscribed: never below one
        (16, 4.0, 1, 12),
        (16, 0.0, 4, 4),  # torchrun / sweep: the cores shared among the processes
        (2, 0.0, 8, 1),
    ],
)
def test_auto_threads_policy(cores, load, processes, threads):
    assert auto_threads(cores, load, processes) == threads


def test_num_threads_setting(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert resolve_threads("auto") == 1  # the environment's explicit choice wins
    assert resolve_threads(3) == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "64")
    assert resolve_threads("auto") == 1
    for bad in (0, "many", 1.5):
        with pytest.raises(SegexpError, match=r"trainer\.num_threads"):
            trainer_settings({"num_threads": bad})


def _folder_config(root):
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for sub in ("images", "masks"):
            (root / split / sub).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(
                root / split / "images" / f"{i}.png"
            )
            Image.fromarray(rng.integers(0, 2, (8, 8), dtype=np.uint8)).save(
                root / split / "masks" / f"{i}.png"
            )
    return compose_config([*TINY_RUN, "dataset=folder", f"dataset.root={root}"])


def test_preflight_pass_is_cached_until_a_file_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGEXP_CACHE_DIR", str(tmp_path / "cache"))
    cfg = _folder_config(tmp_path / "data")
    assert checks.preflight(cfg)  # scanned
    assert checks.preflight(cfg) == {}  # the cached pass
    mask = tmp_path / "data" / "val" / "masks" / "1.png"
    Image.fromarray(np.full((8, 8), 7, dtype=np.uint8)).save(mask)
    os.utime(mask, ns=(1, 1))  # a different mtime, whatever the clock's resolution
    with pytest.raises(SegexpError, match="label check failed"):
        checks.preflight(cfg)


def _batch(seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (4, 3, 16, 16), generator=generator, dtype=torch.uint8)
    return images.contiguous(memory_format=torch.channels_last)


def test_device_augmentation_is_seeded_resumable_and_keeps_uint8_channels_last():
    aug = DevicePhotometric(jitter_p=1.0, blur_p=1.0, noise_p=1.0)
    aug.seed(3, torch.device("cpu"))
    images = _batch()
    first = aug(images)
    assert first.dtype == torch.uint8 and first.shape == images.shape
    assert first.is_contiguous(memory_format=torch.channels_last)
    assert not torch.equal(first, images)
    state = aug.state()
    second = aug(images)
    assert not torch.equal(first, second)  # a new draw each batch
    aug.set_state(state)
    assert torch.equal(aug(images), second)  # resumed: the same draw
    again = DevicePhotometric(jitter_p=1.0, blur_p=1.0, noise_p=1.0)
    again.seed(3, torch.device("cpu"))
    assert torch.equal(again(images), first)


def test_device_augmentation_with_zero_probabilities_is_the_identity():
    aug = DevicePhotometric(jitter_p=0.0, blur_p=0.0, noise_p=0.0)
    aug.seed(0, torch.device("cpu"))
    images = _batch()
    assert torch.equal(aug(images), images)


def test_device_blur_keeps_a_flat_image_flat_and_smooths_an_edge():
    aug = DevicePhotometric(jitter_p=0.0, blur_p=1.0, noise_p=0.0, blur_sigma=(1.0, 1.0))
    aug.seed(0, torch.device("cpu"))
    flat = torch.full((1, 3, 12, 12), 100, dtype=torch.uint8)
    assert torch.equal(aug(flat), flat)
    edge = torch.zeros(1, 1, 12, 12, dtype=torch.uint8)
    edge[..., 6:] = 255
    row = aug(edge)[0, 0, 0].tolist()
    assert row[0] == 0 and row[-1] == 255 and 0 < row[5] < row[6] < 255


def test_training_with_device_augmentation_saves_its_generator(tiny_config, tmp_path):
    summary = fit(tiny_config("trainer.epochs=1", "logger=none", "aug=strong_device"), tmp_path)
    assert summary["status"] == "completed" and summary["num_threads"] >= 1
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["rng"]["device_aug"].dtype == torch.uint8


def test_num_workers_auto_leaves_a_core_for_training(monkeypatch):
    monkeypatch.setattr(loaders, "available_cores", lambda: 16)
    assert num_workers("auto") == 15 and num_workers(3) == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert num_workers("auto") == 3
    monkeypatch.setattr(loaders, "available_cores", lambda: 1)
    assert num_workers("auto") == 0


def test_training_batches_are_channels_last_without_a_reordering_copy(tiny_config):
    cfg = tiny_config()
    images, _ = next(iter(build_splits(cfg).train))
    assert images.shape[1] == 3 and images.is_contiguous(memory_format=torch.channels_last)
    dev = make_device(trainer_settings(cfg.trainer))
    assert dev.images(images).data_ptr() == images.data_ptr()  # CPU, channels-last: no copy
    contiguous = make_device(
        trainer_settings(tiny_config("trainer.channels_last=false").trainer)
    ).images(images)
    assert contiguous.is_contiguous() and torch.equal(contiguous, images)


def test_busy_cores_counts_the_other_runnable_tasks_now(tmp_path):
    from segexp.runtime.threads import busy_cores

    loadavg = tmp_path / "loadavg"
    loadavg.write_text("1.05 1.05 2.07 1/230 4242\n")  # a lagging average; only segexp runs
    assert busy_cores(samples=3, interval_s=0, source=loadavg) == 0
    loadavg.write_text("0.10 0.05 0.01 3/230 4242\n")  # two others just started
    assert busy_cores(samples=3, interval_s=0, source=loadavg) == 2


FAULTS_PER_STEP = """
import resource, torch
from segexp.models.unet import UNet
from segexp.runtime.allocator import retain_freed_memory
torch.manual_seed(0)
model, images = UNet(3, 5, depth=3, base_channels=16), torch.randn(8, 3, 64, 64)

def faults_in_three_steps():  # after three to warm up: the same activations each step
    for step in range(6):
        if step == 3:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        model(images).square().mean().backward()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

default = faults_in_three_steps()
assert retain_freed_memory()
print(default, faults_in_three_steps())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")
def test_retained_memory_spares_training_steps_their_page_faults():
    run = subprocess.run([sys.executable, "-c", FAULTS_PER_STEP], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    default, retained = (int(n) for n in run.stdout.split()[-2:])
    if default < 3000:
        pytest.skip(f"this C library already reuses the freed activations ({default} faults)")
    assert retained < default / 5
