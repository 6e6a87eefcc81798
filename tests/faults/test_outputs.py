"""Every path a tool writes is checked before its work: one line naming the key and the fix."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import segexp.evaluate
import segexp.export
import segexp.predict
from segexp.errors import SegexpError
from segexp.report import report
from tests.conftest import (
    TINY,
    evaluate_tool,
    export_tool,
    predict_tool,
    tool_config,
    untrained_run,
)


@pytest.fixture
def run(tmp_path, monkeypatch):
    """A run folder with a best.pt; loading it fails the test: the checks come first."""
    folder = untrained_run(tmp_path / "run", [*TINY, "logger=none"])
    for tool in (segexp.evaluate, segexp.predict, segexp.export):
        monkeypatch.setattr(tool, "load_run", lambda *a, **k: pytest.fail("work began"))
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "in" / "a.png")
    (tmp_path / "a_file").write_text("mine")
    (tmp_path / "a_folder").mkdir()
    return folder


def read_only(monkeypatch, folder: Path) -> None:
    """As a read-only file system answers (tests may run as root, which writes anywhere)."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: real(p, mode) and Path(p) != folder)


def test_predict_into_a_file_or_a_read_only_folder(run, tmp_path, monkeypatch):
    given = ["run=" + str(run), f"input={tmp_path / 'in'}"]
    with pytest.raises(SegexpError, match=r"^output=.*a_file: .*a_file is a file, not a folder"):
        predict_tool(*given, f"output={tmp_path / 'a_file'}")
    read_only(monkeypatch, tmp_path / "a_folder")
    with pytest.raises(SegexpError, match=r"cannot write into .*a_folder \(read-only"):
        predict_tool(*given, f"output={tmp_path / 'a_folder' / 'masks'}")
    assert (tmp_path / "a_file").read_text() == "mine"


def test_evaluate_into_a_file_or_its_default_folder_read_only(run, tmp_path, monkeypatch):
    with pytest.raises(SegexpError, match=r"^output=.*a_file: .*is a file, not a folder"):
        evaluate_tool(f"run={run}", f"output={tmp_path / 'a_file'}")
    read_only(monkeypatch, run / "checkpoints")
    with pytest.raises(SegexpError, match=r"^output=.*eval_best_test: cannot write into .*checkp"):
        evaluate_tool(f"run={run}")


def test_export_onto_a_folder_or_over_a_file(run, tmp_path):
    with pytest.raises(SegexpError, match=r"^output=.*a_folder is a folder: give the path of a"):
        export_tool(f"run={run}", f"output={tmp_path / 'a_folder'}")
    with pytest.raises(SegexpError, match=r"a_file already exists: give another output= or "):
        export_tool(f"run={run}", f"output={tmp_path / 'a_file'}")
    with pytest.raises(SegexpError, match=r"^output=.*a_file/model\.onnx: .*a_file is a file"):
        export_tool(f"run={run}", f"output={tmp_path / 'a_file' / 'model.onnx'}")


def test_report_into_a_read_only_sweep_folder(tmp_path, monkeypatch):
    read_only(monkeypatch, tmp_path / "a_sweep")
    (tmp_path / "a_sweep").mkdir()
    with pytest.raises(SegexpError, match=r"^sweep=.*a_sweep: cannot write into"):
        report(tool_config("report", f"sweep={tmp_path / 'a_sweep'}"))
