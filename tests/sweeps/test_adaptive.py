"""Adaptive seeds: the variants of a sweep, the verdicts, and the rounds they lead to."""

import json

import pytest

from segexp.errors import SegexpError
from segexp.sweeps.adaptive import DECISIONS, AdaptiveSeeds, Rules, plan, verdict
from tests.sweeps.conftest import job_folder


def test_verdicts_from_the_interval():
    assert verdict(0.002, 0.03, 0.01) == "better"
    assert verdict(-0.05, -0.001, 0.01) == "worse"
    assert verdict(-0.008, 0.009, 0.01) == "equivalent"
    assert verdict(-0.02, 0.005, 0.01) is None  # holds 0 and reaches beyond -min_effect
    assert verdict(float("nan"), float("nan"), 0.01) is None


def test_variants_are_the_product_of_the_swept_values_and_the_seed_is_the_sweepers():
    found = plan({"aug": "none,strong", "seed": "0,1,2"}, ["loss=ce,dice", "trainer.epochs=3"])
    assert found.variants == [
        ["aug=none", "loss=ce"], ["aug=none", "loss=dice"],
        ["aug=strong", "loss=ce"], ["aug=strong", "loss=dice"],
    ]  # fmt: skip
    assert found.fixed == ["trainer.epochs=3"] and found.ignored_seeds == "0,1,2"
    # The command line wins over a preset's sweep of the same key.
    assert plan({"aug": "none,strong"}, ["aug=none,light"]).variants == [["aug=none"],
                                                                        ["aug=light"]]  # fmt: skip


@pytest.mark.parametrize(
    ("rules", "params", "arguments", "message"),
    [
        (Rules(first_round=3, max_seeds=2), {"aug": "none,strong"}, [],
         "hydra.sweeper.max_seeds=2 is below the first round (hydra.sweeper.first_round=3)"),
        (Rules(first_round=1), {"aug": "none,strong"}, [], "hydra.sweeper.first_round=1"),
        (Rules(min_effect=0), {"aug": "none,strong"}, [], "hydra.sweeper.min_effect=0"),
        (Rules(), None, ["aug=strong"], "was given no variants to compare"),
        (Rules(), {"aug": "none,strong"}, ["seed=0,1"], "seed=0,1: hydra/sweeper=segexp_decide"),
    ],
)  # fmt: skip
def test_a_bad_setting_is_one_line_naming_it(rules, params, arguments, message):
    with pytest.raises(SegexpError) as err:
        rules.check()
        plan(params, arguments)
    assert message in str(err.value) and "\n" not in str(err.value)


def _run(sweep_dir, state: AdaptiveSeeds, offsets: dict[str, list[int]], number: list[int]):
    """The jobs of the next round, 'run': folders as a sweep leaves them."""
    jobs = state.next_jobs()
    for overrides in jobs:
        seed = int(overrides[-1].split("=")[1])
        variant = next(o for o in overrides if o.startswith("aug="))
        name = f"{number[0]}_{variant},seed={seed}"
        job_folder(sweep_dir / name, overrides[:-1], seed, offsets[variant][seed])
        number[0] += 1
    if jobs:
        state.after_round(sweep_dir, len(jobs), 1.0, replicates=200)
    return jobs


def test_rounds_add_seeds_only_where_the_comparison_is_open(tmp_path):
    state = AdaptiveSeeds(
        plan({"aug": "none,strong,light"}, ["trainer.epochs=3"]),
        Rules(first_round=2, seeds_per_round=1, max_seeds=4, min_effect=0.001),
    )
    # strong: clearly better at every seed; light: as good as none, seed noise on top.
    offsets = {"aug=none": [0] * 4, "aug=strong": [12] * 4, "aug=light": [2, -3, 3, -2]}
    number = [0]
    first = _run(tmp_path, state, offsets, number)
    assert len(first) == 6 and first[0] == ["trainer.epochs=3", "aug=none", "seed=0"]
    record = json.loads((tmp_path / DECISIONS).read_text())
    strong, light = record["outcomes"]
    assert (strong["decision"], strong["round"], strong["seeds"]) == ("better", 1, 2)
    assert light["decision"] == "open" and light["low"] < 0 < light["high"]
    second = _run(tmp_path, state, offsets, number)
    assert second == [["trainer.epochs=3", "aug=none", "seed=2"],
                      ["trainer.epochs=3", "aug=light", "seed=2"]]  # fmt: skip
    _run(tmp_path, state, offsets, number)
    assert _run(tmp_path, state, offsets, number) == []  # light reached max_seeds
    record = json.loads((tmp_path / DECISIONS).read_text())
    assert record["outcomes"][1]["decision"] == "undecided"
    assert record["outcomes"][1]["seeds"] == 4 and record["jobs_run"] == 10
    assert record["fixed_seed_jobs"] == {"3": 9, "5": 15, "4": 12}
    assert [r["jobs"] for r in record["rounds"]] == [6, 2, 2]


def test_a_rerun_in_the_same_folder_repeats_the_same_rounds(tmp_path):
    """What makes an adaptive sweep resumable like any sweep: a new sweeper over the folder of a
    finished (or killed) one asks for the same jobs in the same order, so every job lands in
    the folder it had and a completed one is skipped (sweeps/resume.py)."""
    rules = Rules(first_round=2, seeds_per_round=1, max_seeds=4, min_effect=0.001)
    offsets = {"aug=none": [0] * 4, "aug=strong": [12] * 4, "aug=light": [2, -3, 3, -2]}
    first = AdaptiveSeeds(plan({"aug": "none,strong,light"}, []), rules)
    rounds, number = [], [0]
    while jobs := _run(tmp_path, first, offsets, number):
        rounds.append(jobs)
    again = AdaptiveSeeds(plan({"aug": "none,strong,light"}, []), rules)
    for jobs in rounds:  # the folders are all there: nothing new is written
        assert again.next_jobs() == jobs
        again.after_round(tmp_path, len(jobs), 0.0, replicates=200)
    assert again.next_jobs() == [] and again.outcomes == first.outcomes
