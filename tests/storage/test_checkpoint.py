"""Checkpoints: a round trip, and a failed or interrupted save keeps the previous file."""

import pytest
import torch

from segexp.storage import checkpoint
from segexp.storage.checkpoint import load_checkpoint, save_checkpoint
from segexp.training.resume import restore


def test_checkpoint_round_trip_and_failed_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1, "w": torch.arange(3)}, path)
    with pytest.raises(Exception):  # noqa: B017 - any pickling failure
        save_checkpoint({"epoch": 2, "bad": lambda: None}, path)
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_interrupted_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)

    def torn_save(state, f):
        f.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt  # a kill in the middle of writing

    monkeypatch.setattr(checkpoint.torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left
    # SIGKILL leaves no chance to clean up: the next run's restore removes the leftover.
    leftover = tmp_path / ".last.pt.x1y2.tmp"
    leftover.write_bytes(b"PK half")
    assert restore(tmp_path / "none.pt", None).epoch == 0
    assert not leftover.exists() and path.exists()
