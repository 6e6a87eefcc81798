"""A run's length in optimizer steps: ``trainer.epochs``, ``trainer.max_steps`` and
``trainer.time_budget``, whichever ends first.

With a time budget the run lays its learning-rate schedule over the steps that fit, so that it
reaches its floor when the budget ends, the final test pass included:

    steps that fit = steps done + (time left - final reserve) / (step + epoch-end cost per step)

- time left: the budget less the wall clock since the run's start (and, resumed, less what
  earlier sessions used);
- final reserve: the test pass, the last validation and checkpoint, and a margin;
- step: seconds per optimizer step, data included, measured as the run goes (before the first
  steps: a probe on copies of the model, ``probe``);
- epoch-end cost: a validation pass and a checkpoint, measured after each epoch.

The plan is decided before the first step, again a few steps in, then every 5 % of the budget
(and after each epoch), kept when it moves by more than 3 %; between decisions a single process
checks its deadline after every step (under torchrun only at decisions: every rank must stop at
the same step). Each decision is recorded as
[from_step, total_steps]: ``trainer.max_steps=<that list>`` with ``trainer.time_budget=null``
repeats the run exactly (summary.json prints the override), since a budget depends on the
machine and a step count does not. A run that would overrun its budget all the same (the
machine slowed down) stops at its deadline, recorded as a last decision [step, step].
"""

import copy
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from segexp.data.loaders import samples_in
from segexp.errors import SegexpError
from segexp.evaluation.pipeline import test_options
from segexp.runtime import distributed
from segexp.training.schedulers import set_horizon
from segexp.training.test_pass import test_image_seconds

# Decide again about this often (a fraction of the budget), keeping a change above TOLERANCE;
# in the last ENDGAME of the budget above ENDGAME_TOLERANCE, since a plan held within 3 % to
# the end would end the run up to 3 % of the budget early.
DECIDE_EVERY = 0.05
TOLERANCE = 0.03
ENDGAME = 0.2
ENDGAME_TOLERANCE = 0.005
FIRST_DECISION_STEPS = 5  # after the probe's guess: the first measured steps
RECENT_EPOCHS = 5  # epoch ends whose median estimates the next one and the test pass
MARGIN = (0.02, 1.0)  # kept free at the end: 2 % of the budget, at least a second


@dataclass
class Probe:
    """Costs measured on copies before the run's first step (seconds)."""

    step: float  # one optimizer step of the training batch shape, without data loading
    eval_image: float  # one image of the test pass at its size
    # one image of the test pass as the run's end scores it (training/test_pass.py), when timed
    test_image: float | None = None


@torch.no_grad()
def _forward_seconds(model: torch.nn.Module, images: torch.Tensor, dev) -> float:
    model.eval()
    with dev.autocast():
        model(images)
    _synchronize(images.device)
    start = time.perf_counter()
    with dev.autocast():
        model(images)
    _synchronize(images.device)
    return time.perf_counter() - start


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def probe(exp, batch_shape: tuple[int, ...], test_shape: tuple[int, ...]) -> Probe:
    """Time a training step and a test-pass forward on copies of the model and optimizer, with
    random inputs of the run's shapes, under a forked random state: the run itself is untouched
    (its weights, optimizer, random streams). Global optimizer hooks (torch.optim's
    ``register_optimizer_step_post_hook``) do see the copy's three steps."""
    from segexp.training.optim import build_optimizer  # the optimizer the run builds

    devices = [exp.dev.device] if exp.dev.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        model = copy.deepcopy(exp.model).train()
        optimizer = build_optimizer(exp.cfg.optimizer, model, exp.trainer.fused_optimizer)
        images = torch.randint(0, 256, batch_shape, dtype=torch.uint8, device=exp.dev.device)
        classes = int(exp.cfg.dataset.num_classes)
        masks = torch.randint(0, classes, (batch_shape[0], *batch_shape[2:]))
        images, masks = exp.dev.batch(images, masks)
        seconds = []
        for _ in range(3):  # the first one warms up (allocator, cuDNN's choice of kernels)
            start = time.perf_counter()
            with exp.dev.autocast():
                loss = exp.loss_fn(model(images), masks)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            _synchronize(exp.dev.device)
            seconds.append(time.perf_counter() - start)
        test_image = torch.randint(0, 256, (1, *test_shape), dtype=torch.uint8)
        eval_image = _forward_seconds(model, exp.dev.images(test_image), exp.dev)
    return Probe(step=min(seconds[1:]), eval_image=eval_image)


class RunLength:
    """Where the run stops, in optimizer steps, and the schedule's horizon that goes with it."""

    def __init__(
        self,
        trainer,
        scheduler,
        steps_per_epoch: int,
        split_sizes: dict[str, int],
        *,
        started: float,
        spent: float = 0.0,
        decisions: list[list[int]] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.scheduler, self.steps_per_epoch, self.clock = scheduler, steps_per_epoch, clock
        self.epoch_cap = None if trainer.epochs is None else trainer.epochs * steps_per_epoch
        self.replay = trainer.plan  # trainer.max_steps as [[from_step, total], ...]
        self.seconds = trainer.budget_seconds
        self.deadline = None if self.seconds is None else started + self.seconds - spent
        self.started, self.spent = started, spent
        # images per pass {"val": n, "test": n}, and "test_cost": a test image in validation images
        self.sizes = split_sizes
        self.decisions: list[list[int]] = [list(d) for d in decisions or []]
        self.horizon = 0
        self.step_seconds: float | None = None
        self.epoch_end_seconds: float | None = None  # validation + checkpoint, measured
        self.recent_ends: list[tuple[float, float]] = []  # (epoch end, test image) seconds
        self.eval_image_seconds: float | None = None
        self.test_image_seconds: float | None = None  # the test pass's own (Probe.test_image)
        self.fastest_step = math.inf  # the fastest window's seconds per step
        self.last_mark = clock()
        self.window = [0.0, 0]  # training seconds and optimizer steps since the last decision
        self.decide_every = 0
        self.deadline_hit = False

    # --- the bounds ------------------------------------------------------------------------

    def _bound(self, step: int) -> int | None:
        """The fixed bounds at ``step``: the epoch cap and the replayed plan."""
        bounds = [] if self.epoch_cap is None else [self.epoch_cap]
        if self.replay is not None:
            bounds.append(next(t for s, t in reversed(self.replay) if s <= step))
        return min(bounds) if bounds else None

    def start(self, step: int, probe: Probe | None = None) -> None:
        """Before the first step of this session (``step`` done by earlier ones)."""
        if probe is not None:
            self.step_seconds, self.eval_image_seconds = probe.step, probe.eval_image
            self.test_image_seconds = probe.test_image
        if self.seconds is None:
            self._set(step, self._bound(step))
            return
        self.check_fits(step)
        self._decide(step, force=True)

    def _set(self, step: int, total: int) -> None:
        if total != self.horizon:
            self.horizon = total
            set_horizon(self.scheduler, total)
        if self.decisions and self.decisions[-1][0] == step and len(self.decisions) > 1:
            self.decisions.pop()  # decided again at the same step (no schedule step between)
        if not self.decisions or self.decisions[-1][1] != total:
            self.decisions.append([step, total])

    # --- the budget ------------------------------------------------------------------------

    def _test_seconds(self) -> float:
        """The larger of two estimates: the validation pass's cost per image (recent epochs),
        and the test pass's own, timed before training, times how much slower the steps are
        now than at their fastest (a machine that got busy tests slower too)."""
        per_image = self.eval_image_seconds or 0.0
        if self.test_image_seconds is not None and self.step_seconds:
            slowdown = self.step_seconds / min(self.step_seconds, self.fastest_step)
            per_image = max(per_image, self.test_image_seconds * slowdown)
        return per_image * self.sizes.get("test", 0)

    def _final_reserve(self) -> float:
        """The test pass, the last validation and checkpoint, and the margin."""
        fraction, floor = MARGIN
        margin = max(fraction * self.seconds, floor)
        last_epoch_end = self.epoch_end_seconds
        if last_epoch_end is None:  # before the first epoch ended: from the probe
            last_epoch_end = (self.eval_image_seconds or 0.0) * self.sizes.get("val", 0)
        return self._test_seconds() + last_epoch_end + margin

    def left(self) -> float:
        return self.deadline - self.clock()

    def check_fits(self, step: int) -> None:
        """Refuse, before any work, a budget that cannot hold one step and the test pass."""
        needed = (self.seconds - self.left()) + (self.step_seconds or 0.0) + self._final_reserve()
        needed = distributed.from_main(needed)  # every rank refuses, or none
        if step == 0 and needed > self.seconds:
            raise SegexpError(
                f"trainer.time_budget={self.seconds:g}s is too small for one optimizer step and "
                f"the test pass on this machine (about {needed:.1f} s from the run's start): "
                f"give trainer.time_budget={math.ceil(needed * 1.5)}s or more"
            )

    def _fits(self, step: int) -> int:
        """Steps done plus the steps that fit in what is left; ``step`` itself (stop now) when
        not even one more does."""
        per_step = self.step_seconds or 0.0
        if self.epoch_end_seconds is not None:
            per_step += self.epoch_end_seconds / self.steps_per_epoch
        room = self.left() - self._final_reserve()
        if per_step <= 0:
            return step + 1
        return step + max(0, math.floor(room / per_step))

    def _decide(self, step: int, force: bool = False) -> None:
        """Rank 0's plan for every rank (under torchrun each process measures its own clock)."""
        fits = self._fits(step)
        bound = self._bound(step)
        total, endgame = distributed.from_main(
            (
                max(step, fits if bound is None else min(bound, fits)),
                self.left() <= ENDGAME * self.seconds,
            )
        )
        if total == step and (bound is None or bound > step):
            self.deadline_hit = True  # not one more step fits: stop rather than overrun
        tolerance = ENDGAME_TOLERANCE if endgame else TOLERANCE
        drift = abs(total - self.horizon) > tolerance * max(self.horizon, 1)
        if force or drift or total in (step, bound):
            self._set(step, total)

    # --- calls from the loop ---------------------------------------------------------------

    def epoch_started(self) -> None:
        self.last_mark = self.clock()

    def step_done(self, step: int) -> bool:
        """After each optimizer step: True when the run should stop training here. A budgeted
        run decides again a few steps in, then every ``decide_every`` steps (the same steps on
        every rank)."""
        now = self.clock()
        self.window[0] += now - self.last_mark  # the first step of an epoch: loader start too
        self.window[1] += 1
        self.last_mark = now
        if self.seconds is None:
            if self.replay is not None:
                self._set(step, self._bound(step))
            return step >= self.horizon
        due = self.decide_every and step % self.decide_every == 0
        if step == FIRST_DECISION_STEPS or due:
            # The mean over the last window (5 % of the budget): steady, yet it follows the
            # machine when it slows down.
            self.step_seconds = self.window[0] / self.window[1]
            self.fastest_step = min(self.fastest_step, self.step_seconds)
            self.window = [0.0, 0]
            if not self.decide_every:
                every = max(1, round(DECIDE_EVERY * self.seconds / self.step_seconds))
                self.decide_every = distributed.from_main(every)
            self._decide(step)
        elif self._past_deadline(step):
            self.deadline_hit = True  # the machine slowed down: stop rather than overrun
            self._set(step, step)
        return step >= self.horizon

    def _past_deadline(self, step: int) -> bool:
        """A single process between decisions: one more step and the final reserve no longer
        fit."""
        if distributed.is_initialized() or step >= self.horizon:
            return False
        return self.left() < self.step_seconds + self._final_reserve()

    def epoch_ended(self, step: int, validation_seconds: float, end_seconds: float) -> None:
        """After an epoch's validation pass and checkpoint (``end_seconds``: both, and the
        logging between them)."""
        val = max(1, self.sizes.get("val", 1))
        # The test pass's cost per image, from the validation pass it resembles most.
        per_image = validation_seconds / val * self.sizes.get("test_cost", 1.0)
        self.recent_ends = [*self.recent_ends, (end_seconds, per_image)][-RECENT_EPOCHS:]
        # The median of the last few: one epoch end slowed by another job does not move it.
        self.epoch_end_seconds = statistics.median(e for e, _ in self.recent_ends)
        self.eval_image_seconds = statistics.median(i for _, i in self.recent_ends)
        if self.seconds is not None and step < self.horizon:
            self._decide(step)

    def finished(self, step: int) -> bool:
        return step >= self.horizon

    # --- the record ------------------------------------------------------------------------

    def stopped_by(self, early_stopped: bool) -> str:
        """Which length ended the run: early_stopping, budget, max_steps or epochs."""
        if early_stopped:
            return "early_stopping"
        if self.deadline_hit or self.horizon != self._bound(self.horizon):
            return "budget"  # (a bound of None: only the budget bounds the run)
        return "epochs" if self.horizon == self.epoch_cap else "max_steps"

    def record(self, early_stopped: bool, used_seconds: float) -> dict[str, Any]:
        plan = ",".join(f"[{s},{t}]" for s, t in self.decisions)
        return {
            "stopped_by": self.stopped_by(early_stopped),
            "time_budget_s": self.seconds,
            "time_used_s": round(used_seconds, 2),
            "steps": self.horizon,
            "step_plan": self.decisions,
            "repeat_without_budget": f"trainer.time_budget=null 'trainer.max_steps=[{plan}]'",
        }


def _shape(batches) -> tuple[int, ...]:
    """(channels, height, width) of a pass's first image: a DataLoader's dataset (evaluation
    transforms are not random, so reading it draws nothing), or a list of batches."""
    if hasattr(batches, "dataset"):
        return tuple(batches.dataset[0][0].shape)
    return tuple(batches[0][0][0].shape)


def plan_length(exp, progress, started: float) -> RunLength:
    """This session's RunLength; with a time budget, the probe first (and the refusal of a
    budget that cannot hold one step and the test pass)."""
    splits = exp.splits
    per_epoch = math.ceil(splits.train_batches / exp.trainer.accumulate_grad_batches)
    val, test = _shape(splits.val), _shape(splits.test)
    options = test_options(exp.cfg)
    sizes = {
        "val": samples_in(splits.val, splits.val_batches),
        "test": len(splits.test.dataset),
        # A test image's cost in validation images: its pixels, and test-time augmentation's
        # passes.
        "test_cost": (test[-1] * test[-2])
        / (val[-1] * val[-2])
        * (1.0 if options is None else options.relative_cost),
    }
    length = RunLength(
        exp.trainer, exp.scheduler, per_epoch, sizes,
        started=started, spent=progress.elapsed_seconds, decisions=progress.step_plan,
    )  # fmt: skip
    measured = None
    if exp.trainer.budget_seconds is not None:
        size = exp.cfg.dataset.get("image_size")
        crop = val[-2:] if size is None else (int(size[0]), int(size[1]))
        batch = (int(exp.cfg.dataset.batch_size), val[0], *crop)
        measured = probe(exp, batch, test)
        measured.test_image = test_image_seconds(exp)
    length.start(progress.global_step, measured)
    return length
