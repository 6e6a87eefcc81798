"""A split's hash: the same files or scenes give the same hash, any change another."""

import shutil

import pytest

from segexp.data.split_hash import split_hash
from segexp.data.synthetic import SyntheticSegmentation
from tests.data.conftest import folder_split
from tests.data_factory import make_split_folders


@pytest.mark.slow  # three composed configs
def test_the_same_files_anywhere_give_the_same_hash_and_a_changed_file_another(tmp_path):
    make_split_folders(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    first, copy = (split_hash(folder_split(tmp_path / n, "test")) for n in ("a", "b"))
    assert first == copy and first["count"] == 4 and first["by"] == "file names and sizes"
    mask = next((tmp_path / "b" / "test" / "masks").iterdir())
    mask.write_bytes(mask.read_bytes() + b"\0")  # one byte more
    assert split_hash(folder_split(tmp_path / "b", "test"))["sha256"] != first["sha256"]
    assert split_hash(folder_split(tmp_path / "a", "val")) != first


def test_generated_scenes_are_hashed_by_their_settings():
    scenes = SyntheticSegmentation("test", 8, (32, 32))
    assert split_hash(scenes) == split_hash(SyntheticSegmentation("test", 8, (32, 32)))
    for other in (SyntheticSegmentation("test", 8, (32, 32), seed=1),
                  SyntheticSegmentation("test", 9, (32, 32)),
                  SyntheticSegmentation("val", 8, (32, 32))):  # fmt: skip
        assert split_hash(other)["sha256"] != split_hash(scenes)["sha256"]
    assert split_hash([1, 2]) is None  # e.g. overfit_batches' fixed batches
