"""benchmarks/throughput.py in tiny CPU mode, and a step count that keeps prefetch small."""

import json
import sys

import pytest
import torch

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import throughput


@pytest.mark.slow
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
