"""runs=[...] baseline=...: any finished runs paired by seed and test image, and every entry
that cannot be paired named in one line before anything is written."""

import json

import pytest

from segexp.errors import SegexpError
from segexp.sweeps.runs import compare_runs
from tests.sweeps.conftest import job_folder


def _snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def runs(tmp_path):
    """Last week's baseline (two single runs, seeds 0 and 1) and today's sweep of a variant."""
    old = tmp_path / "old"
    job_folder(old / "base0", ["trainer.epochs=8"], 0, 0)
    job_folder(old / "base1", ["trainer.epochs=8"], 1, 0)
    sweep = tmp_path / "sweep"
    for seed in (0, 1, 2):
        job_folder(sweep / f"{seed}_seed={seed}", ["trainer.epochs=8", "aug=strong"], seed, 6)
    return tmp_path, old, sweep


@pytest.mark.slow  # writes the whole report: charts, gallery, TensorBoard
def test_runs_from_anywhere_pair_by_seed_and_image(runs):
    root, old, sweep = runs
    out = root / "report"
    entries = [str(old / "base0"), str(old / "base1"), str(sweep)]
    compare_runs(entries, str(old / "base0"), out, replicates=200)
    page = (out / "report.md").read_text()
    assert page.startswith("# Runs compared with the baseline `(no overrides)`")
    line = next(r for r in page.splitlines() if r.startswith("| variant |") and "aug" in r)
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2:5] == ["(no overrides)", "aug=strong", "0,1"]  # seed 2 has no partner
    assert float(cells[5]) > 0
    assert "No gallery: no kept test predictions" in page


@pytest.mark.parametrize(
    ("entries", "baseline", "message"),
    [
        (["missing", "old/base0"], "old/base0", "runs: {root}/missing is not a folder"),
        (["old/base0", "old/failed"], "old/base0", "is not a finished run (status failed: nan)"),
        (["old/base0", "sweep"], "sweep/9_x", "baseline={root}/sweep/9_x is not among the runs"),
        (["old/base0", "late"], "old/base0", "shares no seed with the baseline"),
        (["old/base0", "other_images"], "old/base0", "were not scored on the same test images"),
        (["old/base0", "old/base0_again"], "old/base0", "the same variant (`(no overrides)`)"),
    ],
)  # fmt: skip
def test_an_entry_that_cannot_be_paired_is_one_line_and_nothing_is_written(
    runs, entries, baseline, message
):
    root, old, _ = runs
    failed = old / "failed"
    failed.mkdir()
    (failed / "summary.json").write_text(json.dumps({"status": "failed", "reason": "nan"}))
    job_folder(root / "late", ["aug=strong"], 7, 6)
    job_folder(root / "other_images", ["aug=strong"], 0, 6, images=20)
    job_folder(old / "base0_again", ["trainer.epochs=8"], 0, 0)
    before = _snapshot(root)
    with pytest.raises(SegexpError) as err:
        compare_runs([str(root / e) for e in entries], str(root / baseline), root / "report")
    text = str(err.value)
    assert message.format(root=root) in text and "\n" not in text
    assert _snapshot(root) == before and not (root / "report").exists()
