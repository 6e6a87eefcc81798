"""Each kind of bad data stops a run before its first step with one message naming the file."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segexp.data.checks import preflight
from segexp.data.decode import read_mask
from segexp.data.folder import FolderSegmentation
from segexp.errors import SegexpError
from segexp.training.fit import fit
from tests.conftest import TINY_RUN, compose_config, run_cli
from tests.data_factory import make_split_folders
from tests.faults.conftest import blob, folder


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_cli_missing_mask_fails_with_one_clear_line(tmp_path):
    for split in ("train", "val", "test"):
        for sub in ("images", "masks"):
            (tmp_path / "data" / split / sub).mkdir(parents=True)
        for stem in ("a", "b"):
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(
                tmp_path / "data" / split / "images" / f"{stem}.png"
            )
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(
                tmp_path / "data" / split / "masks" / f"{stem}.png"
            )
    (tmp_path / "data" / "val" / "masks" / "b.png").unlink()
    run_dir = tmp_path / "run"
    result = run_cli(
        "dataset=folder",
        f"dataset.root={tmp_path / 'data'}",
        "dataset.batch_size=1",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    console = result.stdout + result.stderr
    assert "Traceback" not in console
    errors = [line for line in console.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "b.png" in errors[0] and "same file stem" in errors[0]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "b.png" in summary["reason"]
    assert not (run_dir / "checkpoints").exists()


def _folder_dataset(root: Path, mask_value: int = 255) -> Path:
    for split in ("train", "val", "test"):
        for sub in ("images", "masks"):
            (root / split / sub).mkdir(parents=True)
        for stem in ("a", "b"):
            image = np.zeros((8, 8), np.uint8)
            Image.fromarray(image).save(root / split / "images" / f"{stem}.png")
            mask = np.zeros((8, 8), np.uint8)
            mask[:4] = mask_value
            Image.fromarray(mask).save(root / split / "masks" / f"{stem}.png")
    return root


def test_mask_values_beyond_num_classes_are_named(tmp_path):
    root = _folder_dataset(tmp_path / "data", mask_value=3)
    cfg = compose_config([*TINY_RUN, "dataset=folder", f"dataset.root={root}", "logger=none"])
    with pytest.raises(SegexpError) as err:
        fit(cfg, tmp_path / "run")  # fails while the datasets are built, before any training
    message = str(err.value)
    assert "mask values [3] are >= num_classes=2" in message and "a.png" in message
    assert "set dataset.num_classes=4" in message and "\n" not in message
    assert not (tmp_path / "run" / "checkpoints").exists()


# --- masks hold the encoding they claim


def dataset(root: Path, **kwargs) -> FolderSegmentation:
    return FolderSegmentation("images", "masks", root=root, **kwargs)


def test_a_binary_mask_with_three_levels_is_named(tmp_path):
    data = dataset(folder(tmp_path, {"a.png": blob((0, 255, 128))}), mask_mode="binary")
    with pytest.raises(SegexpError, match=r"mask .*a\.png has 3 levels \(0, 128, 255\)"):
        data.read_mask(0)


def test_a_jpeg_index_mask_is_named_with_the_opt_in(tmp_path):
    data = dataset(folder(tmp_path, {"a.jpg": blob((0, 1))}))
    with pytest.raises(SegexpError, match=r"mask .*a\.jpg is JPEG.*dataset\.lossy_masks=true"):
        data.read_mask(0)


def test_a_jpeg_binary_mask_with_the_opt_in_is_thresholded(tmp_path):
    root = folder(tmp_path, {"a.jpg": blob()})
    with pytest.raises(SegexpError, match="lossy"):
        dataset(root, mask_mode="binary").read_mask(0)
    mask = dataset(root, mask_mode="binary", lossy_masks=True).read_mask(0)
    assert set(np.unique(mask)) == {0, 1}
    assert (mask == (blob() > 0)).mean() > 0.97  # the blob back, not 20% of pixels moved


def test_two_images_with_one_stem_are_named(tmp_path):
    root = folder(tmp_path, {"a.png": blob((0, 1))}, images=["a.png", "a.jpg"])
    with pytest.raises(SegexpError, match=r"a\.jpg and a\.png .* same name stem"):
        dataset(root)


def test_two_masks_with_one_stem_are_named_unless_mask_ext_chooses(tmp_path):
    root = folder(tmp_path, {"a.png": blob((0, 1)), "a.bmp": blob((0, 1))}, images=["a.png"])
    with pytest.raises(SegexpError, match=r"same name stem.*dataset\.layout\.mask_ext"):
        dataset(root)
    assert dataset(root, mask_ext="png").pairs[0][1].name == "a.png"


def test_a_dangling_link_is_named(tmp_path):
    root = folder(tmp_path, {"a.png": blob((0, 1))})
    (root / "masks" / "b.png").symlink_to(tmp_path / "gone.png")
    with pytest.raises(
        SegexpError, match=r"masks/b\.png is a link to .*gone\.png.* does not exist"
    ):
        dataset(root)


def test_a_two_level_binary_png_mask_still_reads(tmp_path):
    mask = read_mask(folder(tmp_path, {"a.png": blob()}) / "masks" / "a.png", "binary")
    assert mask.dtype == np.uint8 and (mask == (blob() > 0)).all()
