"""The device: autocast per precision, uint8 batches, channels-last inputs, cuDNN benchmark."""

import torch

from segexp.config.build import build
from segexp.config.trainer import trainer_settings
from segexp.data.loaders import build_splits
from segexp.runtime.device import cpu_has_native_bf16, make_device, seed_everything


def test_precision_switch_selects_autocast_dtype(tiny_config):
    assert (
        make_device(trainer_settings(tiny_config("trainer.precision=bf16").trainer)).amp_dtype
        == torch.bfloat16
    )
    assert (
        make_device(trainer_settings(tiny_config("trainer.precision=fp16").trainer)).amp_dtype
        == torch.float16
    )
    native = torch.bfloat16 if cpu_has_native_bf16() else None  # auto on CPU: bf16 with AMX
    assert make_device(trainer_settings(tiny_config().trainer)).amp_dtype == native


def test_batches_travel_as_uint8_and_the_model_normalises_them(tiny_config):
    cfg = tiny_config()
    images, masks = next(iter(build_splits(cfg).train))
    assert images.dtype == torch.uint8 and masks.dtype == torch.uint8
    dev = make_device(trainer_settings(cfg.trainer))
    on_device, longs = dev.batch(images, masks)
    assert on_device.dtype == torch.uint8 and longs.dtype == torch.long
    mean = torch.tensor(list(cfg.dataset.mean)).view(1, -1, 1, 1)
    std = torch.tensor(list(cfg.dataset.std)).view(1, -1, 1, 1)
    model = build(cfg.model).eval()
    torch.testing.assert_close(model.normalize(on_device), (images.float() - mean) / std)
    with torch.no_grad():  # uint8 in: normalised inside; a float input is taken as normalised
        torch.testing.assert_close(model(on_device), model.net((images.float() - mean) / std))


def test_channels_last_reaches_the_model_input(tiny_config):
    cfg = tiny_config("trainer.channels_last=true")
    dev = make_device(trainer_settings(cfg.trainer))
    images, _ = dev.batch(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(2, 8, 8))
    assert images.is_contiguous(memory_format=torch.channels_last)
    assert build(cfg.model).normalize(images).is_contiguous(memory_format=torch.channels_last)


def test_cudnn_benchmark_switch():
    seed_everything(0, deterministic=False, cudnn_benchmark=False)
    assert torch.backends.cudnn.benchmark is False
    seed_everything(0, deterministic=False, cudnn_benchmark=True)
    assert torch.backends.cudnn.benchmark is True
    seed_everything(0, deterministic=True, cudnn_benchmark=True)
    assert torch.backends.cudnn.benchmark is False


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
