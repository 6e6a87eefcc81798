"""benchmarks/coverage.py in its tiny mode: every interval on a few synthetic experiments."""

import json
import sys

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import coverage


def test_coverage_tiny_mode(tmp_path):
    out = tmp_path / "coverage.json"
    record = coverage.run(["--tiny", "--scenarios", "balanced", "--out", str(out)])
    assert json.loads(out.read_text()) == record
    cells = record["results"]["balanced"]
    assert set(cells) == {"2", "3"} and record["reps"] == 20
    for cell in cells.values():
        assert set(cell["coverage"]) == set(coverage.METHODS)
        assert all(0 <= c <= 1 for c in cell["coverage"].values())
        assert cell["median_width"]["seeds + images"] > 0 and cell["truth"] > 0
    assert len(record["load_average"]) == 3
