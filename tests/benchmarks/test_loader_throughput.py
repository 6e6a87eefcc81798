"""benchmarks/loader_throughput.py in tiny mode: CPU time per sample of each policy."""

import json
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import loader_throughput


@pytest.mark.slow
def test_loader_throughput_tiny_mode(tmp_path):
    out = tmp_path / "loader.json"
    results = loader_throughput.main(["--size", "32", "--samples", "8", "--out", str(out)])
    saved = json.loads(out.read_text())
    (key,) = saved
    assert key == "32x32 target 1600/s" and saved[key]["png_decode_ms"] > 0
    for policy in loader_throughput.POLICIES:
        for label in ("before", "after"):
            row = results[policy][label]
            assert row["cpu_ms_per_sample"] > 0 and row["workers_for_target"] >= 1
            assert row["images_per_s_per_worker"] == pytest.approx(1000 / row["cpu_ms_per_sample"])
