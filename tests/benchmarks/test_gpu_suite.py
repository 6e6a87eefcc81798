"""benchmarks/gpu.sh and gpu_suite.py: every stage of the suite runs in tiny CPU mode."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


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
