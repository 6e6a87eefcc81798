"""The pieces of a shared study: search-space records, per-process seeds, batches of trial
numbers, the heartbeat, the values a job returns."""

import time

import pytest
from omegaconf import OmegaConf

optuna = pytest.importorskip("optuna")

from optuna.distributions import LogUniformDistribution, UniformDistribution  # noqa: E402

from segexp.errors import SegexpError  # noqa: E402
from segexp.sweeps.study import (  # noqa: E402
    check_search_space,
    consecutive,
    heartbeat,
    search_space_record,
    trial_values,
    worker_sampler,
)

SPACE = {
    "optimizer.lr": LogUniformDistribution(1e-4, 3e-2),
    "loss.weights.ce": UniformDistribution(0, 2),
}


def test_a_study_refuses_a_process_that_searches_another_space():
    study = optuna.create_study(study_name="lr", direction="maximize")
    check_search_space(study, search_space_record(SPACE, ["maximize"]), "sqlite:////s.db")
    check_search_space(study, search_space_record(dict(SPACE), ["maximize"]), "sqlite:////s.db")
    wider = {**SPACE, "optimizer.lr": LogUniformDistribution(1e-5, 3e-2)}
    with pytest.raises(SegexpError) as err:
        check_search_space(study, search_space_record(wider, ["maximize"]), "sqlite:////s.db")
    assert str(err.value) == (
        "Optuna study 'lr' in sqlite:////s.db searches another space (optimizer.lr: "
        "LogUniformDistribution(low=0.0001, high=0.03) there, LogUniformDistribution(low=1e-05, "
        "high=0.03) here): give another hydra.sweeper.study_name, or search the study's own space"
    )
    with pytest.raises(SegexpError, match=r"directions \['maximize'\] there, \['minimize'\] here"):
        check_search_space(study, search_space_record(SPACE, ["minimize"]), "sqlite:////s.db")
    fewer = {"optimizer.lr": SPACE["optimizer.lr"]}
    missing = r"loss\.weights\.ce: UniformDistribution.* there, not searched here"
    with pytest.raises(SegexpError, match=missing):
        check_search_space(study, search_space_record(fewer, ["maximize"]), "sqlite:////s.db")


def test_each_process_seeds_its_sampler_by_its_first_trial():
    config = OmegaConf.create({"_target_": "optuna.samplers.RandomSampler", "seed": 5})
    mine = optuna.samplers.RandomSampler(seed=5)
    assert worker_sampler(config, mine, first_trial=0) is mine  # as a process alone would draw
    other = worker_sampler(config, mine, first_trial=3)
    same = optuna.samplers.RandomSampler(seed=8)
    assert isinstance(other, optuna.samplers.RandomSampler)
    draws = [s._rng.uniform() for s in (other, same, mine)]
    assert draws[0] == draws[1] != draws[2]
    unseeded = OmegaConf.create({"_target_": "optuna.samplers.RandomSampler", "seed": None})
    assert worker_sampler(unseeded, mine, first_trial=3) is mine


def test_trials_interleaved_with_another_process_are_launched_in_runs():
    assert consecutive([4, 5, 6]) == [(0, 3)]
    assert consecutive([4, 6, 7, 9]) == [(0, 1), (1, 2), (3, 1)]
    assert consecutive([]) == []


def test_the_heartbeat_marks_running_trials_until_the_block_ends():
    class Storage:  # records the marks Optuna's storage would receive
        def __init__(self):
            self.marks = []

        def record_heartbeat(self, trial_id):
            self.marks.append(trial_id)

    class Trial:
        def __init__(self, trial_id):
            self._trial_id = trial_id

    storage = Storage()
    with heartbeat(storage, [Trial(3), Trial(4)], interval=0.02):
        time.sleep(0.15)
    marked = len(storage.marks)
    assert marked >= 6 and set(storage.marks) == {3, 4}  # both, several times
    time.sleep(0.1)
    assert len(storage.marks) == marked  # none after the block
    with heartbeat(storage, [Trial(5)], interval=None):  # no heartbeat configured
        time.sleep(0.05)
    assert len(storage.marks) == marked


def test_a_job_that_returned_no_number_is_a_failed_trial():
    class Ret:
        def __init__(self, value):
            self.return_value = value

    assert trial_values(Ret(0.5), ["maximize"]) == [0.5]
    with pytest.raises(ValueError, match="returned None, not a number"):
        trial_values(Ret(None), ["maximize"])
    with pytest.raises(ValueError, match="2 values for 1 directions"):
        trial_values(Ret([0.1, 0.2]), ["maximize"])
