"""The protocol guard: differences a comparison does not vary are refused in one line."""

import copy

import pytest

from segexp.errors import SegexpError
from segexp.sweeps import protocol
from segexp.sweeps.jobs import Job
from segexp.sweeps.paired import Comparison

PROTOCOL = {
    "test_files": {"count": 96, "sha256": "aaaa", "by": "generator settings and sample names"},
    "labels": {"num_classes": 5, "ignore_index": 255, "mask_mode": "index", "class_names": []},
    "resolution": {"eval_resize": None, "aug_eval": None, "scored_at": "labels"},
    "inference": {"tta": "none"},
    "postprocess": {},
    "trained_on": {"train": {"sha256": "bbbb"}, "val": {"sha256": "cccc"}},
}


def _job(path, overrides: list[str], **changes) -> Job:
    record = copy.deepcopy(PROTOCOL)
    for dotted, value in changes.items():
        field, key = dotted.split("__")
        record[field][key] = value
    return Job(path, path, overrides, "0", "completed", summary={"protocol": record})


def _comparison(*pairs) -> Comparison:
    return Comparison("f", "-", "a", "b", ["0"], 0.0, 0.0, 0.0, pairs=list(pairs))


def test_differences_name_each_leaf_that_differs():
    other = copy.deepcopy(PROTOCOL)
    other["resolution"]["eval_resize"] = 0.5
    other["labels"]["ignore_index"] = 0
    assert protocol.differences(PROTOCOL, other) == {
        "labels": {"labels.ignore_index": "255 vs 0"},
        "resolution": {"resolution.eval_resize": "None vs 0.5"},
    }


def test_a_difference_the_sweep_varies_is_allowed_and_any_other_refused(tmp_path):
    base = _job(tmp_path / "a", ["aug=none"])
    resized = _job(tmp_path / "b", ["dataset.eval_resize=0.5"], resolution__eval_resize=0.5)
    assert protocol.check([_comparison((base, resized))], sweep=True, allow=False) == []
    # The same difference with aug as what the sweep varies: refused, nothing else to say.
    sneaky = _job(tmp_path / "c", ["aug=strong"], resolution__eval_resize=0.5)
    with pytest.raises(SegexpError) as err:
        protocol.check([_comparison((base, sneaky))], sweep=True, allow=False)
    line = str(err.value)
    assert "\n" not in line and "differ in resolution (resolution.eval_resize: None vs 0.5)" in line
    assert "allow_protocol_mismatch=true" in line
    # runs= declares no compared variable: every difference is refused...
    with pytest.raises(SegexpError, match="differ in resolution"):
        protocol.check([_comparison((base, resized))], sweep=False, allow=False)
    # ...unless allowed, and then the report lists it.
    (note,) = protocol.check([_comparison((base, resized))], sweep=False, allow=True)
    assert note.startswith("- **Protocol differs (allowed)**") and "eval_resize" in note


def test_changed_test_files_are_refused_even_within_a_variant(tmp_path):
    base = _job(tmp_path / "a", ["aug=none"])
    moved = _job(tmp_path / "b", ["aug=none"], test_files__sha256="dddd")
    other = _job(tmp_path / "c", ["aug=strong"])
    with pytest.raises(SegexpError, match="differ in test_files"):
        protocol.check([_comparison((base, other), (moved, other))], sweep=True, allow=False)


def test_runs_without_a_recorded_protocol_are_named(tmp_path):
    old = Job("old", tmp_path / "old", [], "0", "completed", summary={})
    (note,) = protocol.check([_comparison((old, _job(tmp_path / "b", [])))], sweep=True,
                             allow=False)  # fmt: skip
    assert "Protocol not recorded" in note and "old" in note
