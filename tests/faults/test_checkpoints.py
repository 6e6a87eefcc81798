"""Checkpoints that would run code, are cut short or are missing: refused in one line."""

from pathlib import Path

import pytest
import torch

from segexp.errors import SegexpError
from segexp.storage.checkpoint import load_checkpoint
from segexp.training.fit import fit
from segexp.training.resume import resume_config
from tests.conftest import TINY, compose_config, run_cli


class _Payload:
    """Unpickling this runs open(marker, "w"): what a hostile checkpoint could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_checkpoint_that_would_run_code_is_refused_and_nothing_runs(tiny_config, tmp_path):
    marker = tmp_path / "pwned"
    hostile = tmp_path / "checkpoints" / "last.pt"
    hostile.parent.mkdir()
    torch.save({"model": {"w": torch.zeros(1)}, "extra": _Payload(marker)}, hostile)

    with pytest.raises(SegexpError, match=r"refusing to load .*last\.pt") as err:
        load_checkpoint(hostile)
    assert "\n" not in str(err.value)
    with pytest.raises(SegexpError, match="refusing to load"):
        fit(tiny_config(), tmp_path)  # the run folder's last.pt is read to resume
    assert not marker.exists()

    torch.load(hostile, weights_only=False)  # the control: an unsafe load does run the payload
    assert marker.exists()


def test_truncated_checkpoint_is_named(tmp_path):
    path = tmp_path / "best.pt"
    torch.save({"w": torch.ones(100)}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(SegexpError, match=r"best\.pt.*truncated"):
        load_checkpoint(path)


def test_resume_folder_without_last_pt(tmp_path):
    cfg = compose_config([*TINY, f"resume={tmp_path}"])
    with pytest.raises(SegexpError, match=r"resume=.*checkpoints/last\.pt does not exist"):
        resume_config(cfg, {"overrides": [f"resume={tmp_path}"], "choices": {}})


@pytest.mark.slow
def test_cli_bad_resume_writes_nothing_into_the_named_folder(tmp_path):
    missing = tmp_path / "typo"
    result = run_cli(f"resume={missing}", "hydra.run.dir=unused", cwd=tmp_path)
    assert result.returncode == 1
    console = result.stdout + result.stderr
    assert "Traceback" not in console
    errors = [line for line in console.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "checkpoints/last.pt does not exist" in errors[0]
    assert not missing.exists()
