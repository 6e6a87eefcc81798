"""Every speed switch of `trainer` works on the CPU (timings live in benchmarks/, not here)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from segexp.config.build import build
from segexp.config.trainer import trainer_settings
from segexp.data.loaders import build_splits
from segexp.models.wrapper import SegmentationModel
from segexp.runtime.device import cpu_has_native_bf16, make_device, seed_everything
from segexp.training.fit import fit
from segexp.training.optim import build_optimizer, make_optimizer, maybe_compile

from .conftest import REPO

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import throughput

SWITCHES = [
    ["trainer.precision=bf16"],
    ["trainer.precision=fp16"],  # GradScaler path
    ["trainer.channels_last=false"],
    ["trainer.fused_optimizer=true"],
    ["trainer.fused_optimizer=true", "optimizer=sgd"],
    ["trainer.compile=eager"],  # Dynamo graph capture; inductor's codegen is in the benchmark
    ["dataset.num_workers=2"],  # worker processes, persistent, each with its own aug stream
    ["trainer.cudnn_benchmark=false", "trainer.log_every_n_steps=1"],
]


@pytest.mark.parametrize("switch", SWITCHES, ids=[" ".join(s) for s in SWITCHES])
def test_switch_trains_and_evaluates(tiny_config, tmp_path, switch):
    summary = fit(tiny_config("trainer.epochs=1", "logger=none", "aug=light", *switch), tmp_path)
    assert summary["status"] == "completed"
    assert 0 <= summary["val"]["mIoU"] <= 1 and summary["images_per_s"] > 0


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


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_fused_optimizer_is_used_when_asked(tiny_config, name):
    cfg = tiny_config(f"optimizer={name}")
    model = SegmentationModel(torch.nn.Conv2d(1, 1, 1))
    assert build_optimizer(cfg.optimizer, model, True).defaults["fused"] is True
    assert build_optimizer(cfg.optimizer, model, "auto").defaults["fused"] is True  # CPU kernel
    assert not build_optimizer(cfg.optimizer, model, False).defaults["fused"]


def test_auto_fused_falls_back_where_torch_has_no_kernel(caplog):
    class NoFusedKernel(torch.optim.SGD):
        def __init__(self, params, lr=0.1, fused=None):
            if fused:
                raise RuntimeError("`fused=True` requires all the params to be on CUDA")
            super().__init__(params, lr=lr)

    params = [torch.nn.Parameter(torch.zeros(1))]
    assert isinstance(make_optimizer(NoFusedKernel, params, "auto"), NoFusedKernel)
    assert not caplog.records  # auto: quietly the plain implementation
    make_optimizer(NoFusedKernel, params, True)
    assert "requires all the params" in caplog.text  # asked for: said why not


def test_compile_keeps_the_state_dict_keys():
    model = torch.nn.Conv2d(1, 1, 1)
    compiled = maybe_compile(model, "eager")
    assert compiled is not model and maybe_compile(model, False) is model
    compiled(torch.zeros(1, 1, 2, 2))
    assert list(model.state_dict()) == ["weight", "bias"]


def test_cudnn_benchmark_switch():
    seed_everything(0, deterministic=False, cudnn_benchmark=False)
    assert torch.backends.cudnn.benchmark is False
    seed_everything(0, deterministic=False, cudnn_benchmark=True)
    assert torch.backends.cudnn.benchmark is True
    seed_everything(0, deterministic=True, cudnn_benchmark=True)
    assert torch.backends.cudnn.benchmark is False


def test_benchmark_script_tiny_cpu_mode(tmp_path):
    out = tmp_path / "cpu.json"
    entry = throughput.main(
        ["--size", "32", "--batch-size", "4", "--steps", "2", "--warmup", "1",
         "--set", "model.net.base_channels=4", "--set", "model.net.depth=2", "--out", str(out)]
    )  # fmt: skip
    saved = json.loads(out.read_text())
    (key,) = saved
    assert key.startswith("unet 32x32 b4")
    loops = saved[key]["loops"]
    assert set(loops) == set(throughput.LOOPS)
    for name, result in loops.items():
        if name == "lightning" and "skipped" in result:
            continue  # lightning is an optional extra
        assert result["images_per_s"] > 0 and 0 <= result["data_wait_fraction"] <= 1
        assert result["mfu_measured"] > 0 and result["mfu_spec"] is None  # no datasheet on CPU
        assert result["peak_memory_mb"] > 0 and result["steps"] == 2
    assert saved[key]["ratios"]["segexp/plain"] == pytest.approx(
        entry["loops"]["segexp"]["images_per_s"] / entry["loops"]["plain"]["images_per_s"]
    )
    assert loops["plain"]["workers"] == 0 and loops["plain"]["precision"] == "fp32"
    assert saved[key]["versions"]["torch"] == torch.__version__
    assert saved[key]["forward_gflops_per_image"] > 0
    assert saved[key]["peaks"]["measured_matmul_tflops"] > 0


def test_benchmark_steps_keep_prefetch_under_five_percent():
    args = throughput.parse_args(["--workers", "12", "--steps", "50"])
    steps = throughput.loop_steps(args, 12)
    assert 12 * throughput.PREFETCH_FACTOR / steps <= 0.05
    assert throughput.loop_steps(args, 0) == 50


def test_gpu_script_tiny_cpu_mode(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu.sh"), "--tiny"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    suite = json.loads((tmp_path / "suite.json").read_text())
    assert [s["status"] for s in suite["stages"]] == ["done"] * len(suite["stages"])
    results = json.loads((tmp_path / "throughput.json").read_text())
    assert any("aug=strong" in key for key in results)
    assert any("trainer.channels_last=false" in key for key in results)
    assert json.loads((tmp_path / "host_syncs.json").read_text())["steps"] == 2
    assert (tmp_path / "environment.txt").is_file() and (tmp_path / "log.txt").is_file()
