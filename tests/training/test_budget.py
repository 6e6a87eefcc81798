"""A run's length: epochs, a step plan and a time budget, with a clock the test moves."""

import pytest
import torch

from segexp.config.trainer import TrainerSettings
from segexp.errors import SegexpError
from segexp.training.budget import MARGIN, Probe, RunLength
from segexp.training.schedulers import warmup_poly


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def length(clock: Clock, *, steps_per_epoch: int = 100, **trainer) -> RunLength:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = warmup_poly(optimizer, total_steps=1, warmup_steps=0, power=1.0)
    sizes = {"val": 10, "test": 10, "test_cost": 1.0}
    settings = TrainerSettings(**{"epochs": None, **trainer})
    return RunLength(settings, scheduler, steps_per_epoch, sizes, started=clock(), clock=clock)


def run(
    run_length: RunLength, clock: Clock, seconds_per_step, horizons=None, epoch_end=lambda s: 1.0
) -> int:
    """Steps until the length stops them; ``seconds_per_step(step)`` and ``epoch_end(step)``
    (validation and checkpoint) advance the clock; ``horizons`` gets the schedule's horizon
    after each step."""
    step = 0
    run_length.epoch_started()
    while True:
        clock.now += seconds_per_step(step)
        step += 1
        stop = run_length.step_done(step)
        if step % run_length.steps_per_epoch == 0:
            end = epoch_end(step)
            clock.now += end
            run_length.epoch_ended(step, validation_seconds=end / 2, end_seconds=end)
            run_length.epoch_started()
        if horizons is not None:
            horizons.append(run_length.scheduler.lr_lambdas[0].total_steps)
        if stop or step > 100_000:
            return step


def test_the_schedule_is_laid_over_the_steps_that_fit_and_ends_within_the_budget():
    clock = Clock()
    budget = length(clock, time_budget="100s")
    budget.start(0, Probe(step=0.05, eval_image=0.01))
    first = budget.horizon  # from the probe: (100 - test 0.1 - last val 0.1 - margin 2) / 0.05
    assert first == pytest.approx((100 - 0.1 - 0.1 - 2.0) / 0.05, abs=1.01)  # floor()
    steps = run(budget, clock, lambda step: 0.1)  # the machine is twice as slow as probed
    assert clock.now - 1000.0 <= 100 - MARGIN[1]  # the test pass and the margin still fit
    assert budget.stopped_by(early_stopped=False) == "budget"
    assert steps == budget.horizon < first and budget.decisions[0] == [0, first]
    assert budget.scheduler.lr_lambdas[0].total_steps == budget.horizon  # the schedule's floor
    assert [s for s, _ in budget.decisions] == sorted(s for s, _ in budget.decisions)


def test_a_sudden_slowdown_stops_at_the_deadline_and_is_recorded():
    clock = Clock()
    budget = length(clock, time_budget="60s")
    budget.start(0, Probe(step=0.01, eval_image=0.001))
    steps = run(budget, clock, lambda step: 0.01 if step < 1000 else 2.0)  # 200x slower
    assert budget.deadline_hit and budget.decisions[-1] == [steps, steps]
    assert clock.now - 1000.0 <= 60
    assert budget.stopped_by(early_stopped=False) == "budget"


def test_one_slow_epoch_end_does_not_end_the_run_early():
    clock = Clock()
    budget = length(clock, time_budget="100s", steps_per_epoch=50)
    budget.start(0, Probe(step=0.01, eval_image=0.05))
    run(budget, clock, lambda step: 0.01, epoch_end=lambda step: 20.0 if step == 2000 else 1.0)
    assert 95 <= clock.now - 1000.0 <= 100 - MARGIN[1]  # left: the last epoch end, test, margin


def test_a_machine_that_speeds_up_a_little_still_uses_its_budget():
    clock = Clock()
    budget = length(clock, time_budget="300s", steps_per_epoch=300)
    budget.start(0, Probe(step=0.02, eval_image=0.01))
    run(budget, clock, lambda step: 0.0206 if step < 5000 else 0.02, epoch_end=lambda step: 0.2)
    # Within 3 % of the budget: a plan held within 3 % of its estimate to the end stops at 288 s.
    assert 300 * 0.97 <= clock.now - 1000.0 <= 300 - MARGIN[1]


def test_the_recorded_plan_replays_the_same_horizons_at_the_same_steps():
    clock, planned, replayed_horizons = Clock(), [], []
    budget = length(clock, time_budget="30s")
    budget.start(0, Probe(step=0.02, eval_image=0.001))
    run(budget, clock, lambda step: 0.02 + 0.01 * (step > 400), planned)
    assert len(budget.decisions) > 2  # the plan moved: the replay has something to follow
    replayed = length(Clock(), max_steps=budget.decisions)  # no budget, no clock of its own
    replayed.start(0)
    steps = run(replayed, Clock(), lambda step: 0.0, replayed_horizons)
    assert replayed_horizons == planned and replayed.decisions == budget.decisions
    assert steps == budget.horizon
    assert replayed.stopped_by(early_stopped=False) == "max_steps"


def test_epochs_bound_a_budget_that_has_room_to_spare():
    clock = Clock()
    capped = length(clock, time_budget="1h", epochs=2, steps_per_epoch=10)
    capped.start(0, Probe(step=0.01, eval_image=0.001))
    assert run(capped, clock, lambda step: 0.01) == 20
    assert capped.stopped_by(early_stopped=False) == "epochs"
    assert capped.stopped_by(early_stopped=True) == "early_stopping"


def test_a_budget_too_small_for_one_step_and_the_test_pass_is_refused_with_the_smallest():
    clock = Clock()
    small = length(clock, time_budget="2s")
    clock.now += 0.5  # the run's start: config, data, model
    with pytest.raises(SegexpError) as err:
        small.start(0, Probe(step=1.5, eval_image=0.2))
    message = str(err.value)
    assert message.startswith("trainer.time_budget=2s is too small for one optimizer step")
    needed = 0.5 + 1.5 + (0.2 * 10 + 0.2 * 10 + 1.0)  # start, step, test, last val, margin
    assert f"about {needed:.1f} s" in message and "give trainer.time_budget=" in message


def test_without_a_budget_the_length_is_the_epochs_or_the_steps():
    clock = Clock()
    fixed = length(clock, epochs=3, steps_per_epoch=7)
    fixed.start(0)
    assert fixed.horizon == 21 and fixed.decisions == [[0, 21]]
    steps = length(clock, max_steps=15)
    steps.start(0)
    assert run(steps, clock, lambda step: 0.0) == 15
    assert steps.stopped_by(early_stopped=False) == "max_steps"


def test_the_test_pass_is_reserved_at_its_own_timed_cost_slowed_as_the_steps_slow():
    clock = Clock()
    budget = length(clock, time_budget="10s")  # 10 test images; a decision every 50 steps
    budget.start(0, Probe(step=0.01, eval_image=0.001, test_image=0.05))
    assert budget._test_seconds() == pytest.approx(0.5)  # not 10 x 0.001 from the forward alone
    for step in range(1, 201):
        clock.now += 0.01 if step <= 100 else 0.03  # then another job arrived: 3x slower
        budget.step_done(step)
    assert budget._test_seconds() == pytest.approx(1.5)
