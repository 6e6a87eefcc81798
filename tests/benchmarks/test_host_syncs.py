"""benchmarks/host_syncs.py in tiny CPU mode: segexp's loop under the profiler."""

import json
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import host_syncs


@pytest.mark.slow
def test_host_syncs_tiny_cpu_mode(tmp_path):
    out = tmp_path / "syncs.json"
    result = host_syncs.count_syncs(
        ["--device", "cpu", "--size", "32", "--batch-size", "4", "--steps", "2", "--warmup",
         "1", "--set", "model.net.base_channels=4", "--set", "model.net.depth=2",
         "--out", str(out)]
    )  # fmt: skip
    assert json.loads(out.read_text()) == result
    assert result["device"] == "cpu" and result["steps"] == 2
    assert result["syncs_per_step"] is None and "CPU" in result["note"]  # nothing to count
    assert result["log_every_n_steps"] == 10  # read from the run's trainer settings
