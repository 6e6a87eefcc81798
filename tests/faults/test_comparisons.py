"""Comparisons that cannot be made are one line, before anything is written: an adaptive sweep
with bad settings, and runs scored under different evaluation protocols."""

import json
import shutil

import pytest

from segexp.errors import SegexpError
from segexp.report import report
from tests.conftest import HALF, segexp_cli, tool_config
from tests.faults.conftest import QUICK

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["aug=none,light", "hydra.sweeper.max_seeds=1"],
         "hydra.sweeper.max_seeds=1 is below the first round (hydra.sweeper.first_round=2)"),
        (["aug=light"], "hydra/sweeper=segexp_decide was given no variants to compare"),
    ],
)  # fmt: skip
def test_an_adaptive_sweep_with_bad_settings_is_one_line_and_creates_nothing(
    tmp_path, capsys, overrides, message
):
    sweep_dir = tmp_path / "sweep"
    code = segexp_cli(
        "--multirun", *QUICK, "hydra/sweeper=segexp_decide", *overrides,
        f"hydra.sweep.dir={sweep_dir}",
    )  # fmt: skip
    assert code == 1
    out = capsys.readouterr()
    lines = [line for line in (out.out + out.err).splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], lines  # Hydra's format: [HYDRA]
    assert not sweep_dir.exists()


def test_runs_scored_at_another_resolution_are_refused_with_the_difference(
    run_dir, resized_run, tmp_path
):
    """The same data, model and training, but the second run's evaluation transform halves the
    images: a comparison would measure the resolution, not what the runs set out to compare."""
    base, other = tmp_path / "base", tmp_path / "other"
    for source, folder, overrides in ((run_dir, base, []), (resized_run, other, [HALF])):
        shutil.copytree(source, folder)
        summary = json.loads((folder / "summary.json").read_text())
        (folder / "summary.json").write_text(json.dumps({**summary, "overrides": overrides}))
    before = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    out = tmp_path / "report"
    given = [f"runs=[{base},{other}]", f"baseline={base}", f"output={out}"]
    with pytest.raises(SegexpError) as err:
        report(tool_config("report", *given))
    line = str(err.value)
    assert "\n" not in line and "allow_protocol_mismatch=true" in line
    assert f"the evaluation protocols of {base} and {other} differ in resolution" in line
    assert "resolution.aug_eval.height: None vs 16; resolution.aug_eval.width" in line
    assert not out.exists()
    assert {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()} == before
    report(tool_config("report", *given, "allow_protocol_mismatch=true"))
    assert "**Protocol differs (allowed)**" in (out / "report.md").read_text()
