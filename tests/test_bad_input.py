"""Each kind of bad input stops a run before its first step with one message naming the file."""

import json

import numpy as np
import pytest
from PIL import Image

from segexp.config.checks import validate
from segexp.data.checks import preflight
from segexp.errors import SegexpError

from .conftest import TINY_RUN, compose_config, run_cli
from .data_factory import make_split_folders


@pytest.fixture
def data(tmp_path):
    return make_split_folders(tmp_path / "data", {"train": 3, "val": 2, "test": 2})


def check(root, *overrides):
    preflight(compose_config(["dataset=folder", f"dataset.root={root}", *overrides]))


def test_good_data_passes(data):
    check(data)


def test_corrupt_image(data):
    (data / "train" / "images" / "train1.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(SegexpError, match=r"cannot read .*train1\.png.*Replace or remove"):
        check(data)


def test_truncated_image(data):
    path = data / "val" / "images" / "val0.png"
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(SegexpError, match=r"unreadable.*val0\.png"):
        check(data)


def test_unreadable_mask(data):
    (data / "test" / "masks" / "test1.png").write_text("not an image")
    with pytest.raises(SegexpError, match=r"cannot read .*masks/test1\.png"):
        check(data)


def test_size_mismatch(data):
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(data / "train" / "masks" / "train2.png")
    with pytest.raises(SegexpError, match=r"train2\.png is 32x24 but its mask .* is 5x5"):
        check(data)


def test_missing_pair(data):
    (data / "train" / "masks" / "train0.png").unlink()
    with pytest.raises(SegexpError, match=r"have no mask .*train0\.png.*same file stem"):
        check(data)


def test_empty_folder(data):
    for path in (data / "val" / "images").iterdir():
        path.unlink()
    with pytest.raises(SegexpError, match=r"val/images has no images"):
        check(data)


def test_non_image_file(data):
    (data / "train" / "images" / "notes.txt").write_text("hello")
    (data / "train" / "images" / ".DS_Store").write_text("ignored: hidden")
    with pytest.raises(SegexpError, match=r"notes\.txt is not an image.*move it out"):
        check(data)


def test_unexpected_mask_value(data):
    mask = data / "test" / "masks" / "test0.png"
    values = np.asarray(Image.open(mask)).copy()
    values[3, 3] = 4
    Image.fromarray(values).save(mask)
    with pytest.raises(SegexpError, match=r"values \[4\] are >= num_classes=2.*test0\.png"):
        check(data)
    check(data, "dataset.num_classes=5")  # the fix the message suggests


def test_cli_refuses_255_masks_and_leaves_nothing_that_looks_like_success(tmp_path):
    make_split_folders(tmp_path / "data", {"train": 4, "val": 2, "test": 2}, mask_scale=255)
    run_dir = tmp_path / "run"
    result = run_cli(
        *TINY_RUN,
        "dataset=folder",
        f"dataset.root={tmp_path / 'data'}",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    console = result.stdout + result.stderr
    errors = [line for line in console.splitlines() if "ERROR" in line]
    assert "Traceback" not in console and len(errors) == 1
    assert "foreground stored as 255" in errors[0] and "mask_mode=binary" in errors[0]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "stored as 255" in summary["reason"]
    leftovers = {p.name for p in run_dir.iterdir()} - {".hydra", "summary.json", "segexp.log"}
    assert leftovers == set()  # no checkpoints, no TensorBoard events, no previews


def test_unset_root_is_named():
    with pytest.raises(SegexpError, match=r"dataset\.root is not set"):
        validate(compose_config(["dataset=folder"]))
