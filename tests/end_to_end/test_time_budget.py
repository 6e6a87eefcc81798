"""Time-budgeted runs: laid out on the clock, recorded, repeatable without the budget, resumed
against what is left, and refused when too small."""

import json
import shlex

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from segexp.training.fit import fit
from tests.conftest import TINY, compose_config, segexp_cli
from tests.faults.conftest import QUICK, one_error

pytestmark = pytest.mark.slow

# A run that ends by its budget: more epochs would fit than the budget allows (no cap).
BUDGETED = [*TINY, "trainer.epochs=null", "dataset.train.num_samples=64", "logger=none"]


def test_a_budgeted_run_records_its_plan_and_the_override_repeats_it_exactly(tmp_path):
    (tmp_path / "budgeted").mkdir()
    (tmp_path / "again").mkdir()
    summary = fit(compose_config([*BUDGETED, "trainer.time_budget=8s"]), tmp_path / "budgeted")
    assert summary["stopped_by"] == "budget" and summary["time_budget_s"] == 8.0
    assert summary["steps"] == summary["step_plan"][-1][1] > 16  # more than one epoch
    override = summary["repeat_without_budget"]
    assert override.startswith("trainer.time_budget=null 'trainer.max_steps=[[0,")
    again = fit(compose_config([*BUDGETED, *shlex.split(override)]), tmp_path / "again")
    assert again["stopped_by"] == "max_steps" and again["step_plan"] == summary["step_plan"]
    as_text = lambda d: json.dumps(d, sort_keys=True)  # noqa: E731  (NaN equals NaN as text)
    assert as_text(again["val"]) == as_text(summary["val"])
    assert as_text(again["test"]) == as_text(summary["test"])


def test_a_resumed_run_continues_against_what_is_left_of_its_budget(tmp_path):
    budgeted = [*BUDGETED, "trainer.time_budget=8s", "logger=tensorboard"]
    first = fit(compose_config([*budgeted, "trainer.epochs=1"]), tmp_path)
    assert first["stopped_by"] == "epochs"
    rest = fit(compose_config(budgeted), tmp_path)
    assert rest["stopped_by"] == "budget" and rest["epochs_run"] > 1
    assert rest["step_plan"][: len(first["step_plan"])] == first["step_plan"]
    assert rest["time_used_s"] > first["time_used_s"]  # both sessions count
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    planned = [[e.step, int(e.value)] for e in events.Scalars("train/planned_steps")]
    assert planned[-len(rest["step_plan"]) :] == rest["step_plan"]
    assert "run_length/text_summary" in events.Tags()["tensors"]


def test_a_budget_too_small_is_refused_before_any_work(tmp_path, capsys):
    run = tmp_path / "run"
    assert segexp_cli(*QUICK, "trainer.time_budget=0.05s", f"hydra.run.dir={run}") == 1
    line = one_error(capsys, "trainer.time_budget=0.05s is too small for one optimizer step")
    assert "give trainer.time_budget=" in line
    assert not (run / "checkpoints").exists()  # nothing trained
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"
