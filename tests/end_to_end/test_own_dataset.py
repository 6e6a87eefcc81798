"""A user's own named dataset config beside segexp's: audit, train, evaluate and predict."""

import importlib
import json
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TINY_RUN, evaluate_tool, predict_tool
from tests.data_factory import make_split_folders

pytestmark = pytest.mark.slow

MINE = """\
# A user's own dataset, kept outside segexp's conf/
defaults:
  - folder
  - _self_
name: mine
root: {root}
num_classes: 2
class_names: [sky, building]
resize: 0.5
palette: [[70, 130, 180], [200, 200, 0]]
"""


def _main(module: str, *args: str, monkeypatch) -> None:
    """``module``'s console script in-process: the same Hydra code path, no new interpreter."""
    monkeypatch.setattr(sys, "argv", [module, *args])
    try:
        importlib.import_module(module).main()
    except SystemExit as done:  # --help ends with status 0
        assert done.code in (0, None)


def test_own_named_dataset_config_with_config_dir(tmp_path, monkeypatch, capsys):
    root = make_split_folders(tmp_path / "data", {"train": 4, "val": 2, "test": 2}, size=(40, 48))
    (tmp_path / "myconf" / "dataset").mkdir(parents=True)
    (tmp_path / "myconf" / "dataset" / "mine.yaml").write_text(MINE.format(root=root))
    monkeypatch.chdir(tmp_path)
    _main("segexp.train", "--config-dir", "myconf", "--help", monkeypatch=monkeypatch)
    assert "dataset: folder, isbi2012, mine, synthetic" in capsys.readouterr().out
    _main("segexp.audit", "--config-dir", "myconf", "dataset=mine", "hydra.run.dir=audit",
          monkeypatch=monkeypatch)  # fmt: skip
    assert json.loads((tmp_path / "audit" / "audit.json").read_text())["fatal"] == []
    _main(
        "segexp.train", "--config-dir", "myconf", "dataset=mine", *TINY_RUN, "trainer.epochs=1",
        "dataset.image_size=[16,16]", "dataset.num_workers=0", "logger=none", "hydra.run.dir=run",
        monkeypatch=monkeypatch,
    )  # fmt: skip
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["choices"]["dataset"] == "mine"
    metrics = evaluate_tool(f"run={tmp_path / 'run'}", "split=val", f"output={tmp_path / 'ev'}")
    assert 0 <= metrics["mIoU"] <= 1
    written = predict_tool(
        f"run={tmp_path / 'run'}", f"input={root / 'test' / 'images'}", f"output={tmp_path / 'p'}"
    )
    mask = np.asarray(Image.open(written[0]))
    assert mask.shape == (40, 48)  # at the input's size, whatever the run's resize
