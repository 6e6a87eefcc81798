"""Saving an epoch: best.pt and kept epochs are links to last.pt, not new serialisations."""

import logging
import os

import pytest
import torch

from segexp.storage.checkpoint import load_checkpoint
from segexp.training.fit import fit
from segexp.training.resume import save_epoch


def test_best_is_a_link_to_last_not_a_second_serialisation(tmp_path, monkeypatch):
    calls = []
    original = torch.save
    monkeypatch.setattr(torch, "save", lambda *a, **k: (calls.append(1), original(*a, **k)))
    save_epoch({"epoch": 2, "w": torch.ones(3)}, tmp_path, improved=True, keep_every=2)
    assert len(calls) == 1
    last, best, kept = tmp_path / "last.pt", tmp_path / "best.pt", tmp_path / "epoch_0002.pt"
    assert os.path.samefile(last, best) and os.path.samefile(last, kept)
    save_epoch({"epoch": 3, "w": torch.zeros(3)}, tmp_path, improved=False, keep_every=2)
    # last.pt was replaced by a new file; best.pt still holds epoch 2
    assert load_checkpoint(best)["epoch"] == 2 and load_checkpoint(last)["epoch"] == 3
    assert not os.path.samefile(last, best)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "epoch_0002.pt", "last.pt"]


@pytest.mark.slow
def test_an_exact_resume_says_so(tiny_config, tmp_path, caplog):
    fit(tiny_config("trainer.epochs=1", "aug=light"), tmp_path)
    with caplog.at_level(logging.WARNING):
        summary = fit(tiny_config("aug=light"), tmp_path)
    assert summary["exact_resume"] is True and summary["inexact_resume"] == []
    assert "not exact" not in caplog.text


@pytest.mark.slow
def test_a_changed_augmentation_on_resume_is_said_and_recorded(tiny_config, tmp_path, caplog):
    fit(tiny_config("trainer.epochs=1", "aug=light"), tmp_path)
    with caplog.at_level(logging.WARNING):
        summary = fit(tiny_config("aug=strong"), tmp_path)
    warnings = [r.getMessage() for r in caplog.records if "not exact" in r.getMessage()]
    assert len(warnings) == 1 and "training augmentation" in warnings[0]
    assert "\n" not in warnings[0]
    assert summary["exact_resume"] is False
    assert summary["inexact_resume"] == [
        "epoch 1: the training augmentation (aug.train, dataset.resize) differs from the one "
        "last.pt was written with, so its random stream starts afresh"
    ]
