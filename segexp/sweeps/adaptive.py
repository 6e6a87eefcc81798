"""Adaptive seeds (``hydra/sweeper=segexp_decide``): run seeds until each comparison is decided.

Every variant (each combination of the swept values; the first is the baseline) runs on a first
round of seeds. After each round, each undecided variant is compared with the baseline over the
seeds both completed (the report's headline interval, sweeps/paired.py) and gets a verdict:

- *better* / *worse*: the interval lies above / below 0;
- *equivalent*: the interval lies within ±min_effect (a difference too small to matter);
- otherwise it is still open and gets ``seeds_per_round`` more seeds (the baseline runs them
  too), up to ``max_seeds``; what is open then stays *undecided*.

Seeds are 0, 1, 2, ... in order, and a round depends only on the results of the rounds before,
so running the same command again with the same ``hydra.sweep.dir`` repeats the same rounds and
the same job folders: completed jobs are skipped (sweeps/resume.py). Rounds go through the
configured launcher (basic, joblib, submitit). ``decisions.json`` in the sweep folder records,
after every round, each variant's verdict, the round it was reached in, the jobs run and what
fixed-seed sweeps would have cost; the report shows it.
"""

import itertools
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from segexp.errors import SegexpError
from segexp.storage.files import write_json
from segexp.sweeps.jobs import group_variants, load_jobs, override_key
from segexp.sweeps.paired import compare_variants

log = logging.getLogger("segexp")
DECISIONS = "decisions.json"
SWEEPER = "segexp_decide"
FIXED_SEEDS = (3, 5)  # the fixed-seed sweeps the report prices the adaptive one against


@dataclass(frozen=True)
class Rules:
    """``hydra.sweeper.*`` of segexp_decide (hydra_plugins/segexp_decide_sweeper/config.py)."""

    first_round: int = 2
    seeds_per_round: int = 1
    max_seeds: int = 5
    min_effect: float = 0.01

    def check(self) -> None:
        if self.first_round < 2:
            raise SegexpError(
                f"hydra.sweeper.first_round={self.first_round}: an interval needs at least 2 "
                "seeds: give 2 or more"
            )
        if self.max_seeds < self.first_round:
            raise SegexpError(
                f"hydra.sweeper.max_seeds={self.max_seeds} is below the first round "
                f"(hydra.sweeper.first_round={self.first_round}): give max_seeds >= "
                f"{self.first_round}"
            )
        if self.seeds_per_round < 1:
            raise SegexpError(
                f"hydra.sweeper.seeds_per_round={self.seeds_per_round}: give 1 or more"
            )
        if not self.min_effect > 0:
            raise SegexpError(
                f"hydra.sweeper.min_effect={self.min_effect}: give the smallest difference in "
                "test mIoU that matters, a number > 0 (e.g. 0.01)"
            )


def verdict(low: float, high: float, min_effect: float) -> str | None:
    """better / worse / equivalent, or None while the interval leaves it open."""
    if math.isnan(low) or math.isnan(high):
        return None
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    if -min_effect <= low and high <= min_effect:
        return "equivalent"
    return None


@dataclass
class Outcome:
    """One variant against the baseline, as decisions.json records it."""

    variant: str
    overrides: list[str]
    decision: str = "open"  # better | worse | equivalent | undecided (at max_seeds) | open
    round: int | None = None  # the round the decision was reached in
    seeds: int = 0  # seeds run when it was decided (or so far)
    diff: float = math.nan
    low: float = math.nan
    high: float = math.nan


@dataclass
class Plan:
    """The variants of a segexp_decide sweep and the overrides every job shares."""

    variants: list[list[str]]  # the first is the baseline
    fixed: list[str]
    ignored_seeds: str | None = None  # a preset's seed list, which this sweeper replaces


def plan(params: dict[str, Any] | None, arguments: list[str]) -> Plan:
    """The variants (the product of the swept values, in order) from ``hydra.sweeper.params``
    and the command line's overrides; a sweep of ``seed`` on the command line is refused (this
    sweeper chooses the seeds), a preset's is set aside."""
    parser = OverridesParser.create()
    given = [f"{key}={value}" for key, value in (params or {}).items()]
    swept: dict[str, list[str]] = {}
    fixed: dict[str, str] = {}
    ignored = None
    for source, overrides in (("params", given), ("command line", arguments)):
        for override in parser.parse_overrides(overrides):
            key = override.get_key_element()
            if override_key(key) == "seed":
                if source == "command line":
                    raise SegexpError(
                        f"{override.input_line}: hydra/sweeper={SWEEPER} chooses the seeds "
                        "itself (0, 1, ... up to hydra.sweeper.max_seeds): leave seed out"
                    )
                ignored = override.input_line.partition("=")[2]
                continue
            if override.is_sweep_override():
                if not override.is_discrete_sweep():
                    raise SegexpError(
                        f"{override.input_line}: hydra/sweeper={SWEEPER} compares listed "
                        "values (a,b,c or range(...)), not an interval"
                    )
                swept[key] = [f"{key}={v}" for v in override.sweep_string_iterator()]
                fixed.pop(key, None)
            else:
                fixed[key] = f"{key}={override.get_value_element_as_str()}"
                swept.pop(key, None)
    variants = [list(combination) for combination in itertools.product(*swept.values())]
    if len(variants) < 2:
        raise SegexpError(
            f"hydra/sweeper={SWEEPER} was given no variants to compare: sweep at least one key "
            "over two or more values, e.g. aug=none,strong (the first value is the baseline)"
        )
    return Plan(variants, list(fixed.values()), ignored)


def check_config(config: DictConfig) -> None:
    """Before a multirun creates anything: the rules and the variants of a segexp_decide sweep
    (any other sweeper: nothing to check)."""
    sweeper = config.hydra.sweeper
    if not str(sweeper.get("_target_", "")).endswith("DecideSweeper"):
        return
    rules_of(sweeper).check()
    task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    params = OmegaConf.to_container(sweeper.params, resolve=False) if sweeper.params else None
    plan(params, [str(o) for o in task])


def rules_of(sweeper: DictConfig | dict) -> Rules:
    return Rules(**{key: sweeper[key] for key in asdict(Rules()) if key in sweeper})


@dataclass
class AdaptiveSeeds:
    """The state of a segexp_decide sweep from round to round."""

    plan: Plan
    rules: Rules
    seeds_run: dict[int, int] = field(default_factory=dict)  # variant index -> seeds run
    outcomes: list[Outcome] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.seeds_run = dict.fromkeys(range(len(self.plan.variants)), 0)
        self.outcomes = [Outcome(" ".join(v), v) for v in self.plan.variants[1:]]

    def open(self) -> list[int]:
        """Indices (into the variants) of the variants still undecided."""
        return [i + 1 for i, o in enumerate(self.outcomes) if o.decision == "open"]

    def next_jobs(self) -> list[list[str]]:
        """The overrides of the next round's jobs; [] when the sweep is done."""
        first = not self.rounds
        wanted: dict[int, int] = {}
        for index in self.open():
            target = self.rules.first_round if first else self.seeds_run[index]
            if not first:
                if self.seeds_run[index] >= self.rules.max_seeds:
                    continue
                target = min(self.rules.max_seeds, target + self.rules.seeds_per_round)
            wanted[index] = target
        if not wanted:
            return []
        wanted[0] = max(self.seeds_run[0], *wanted.values())  # the baseline pairs every seed
        jobs = []
        for index, target in sorted(wanted.items()):
            for seed in range(self.seeds_run[index], target):
                jobs.append([*self.plan.fixed, *self.plan.variants[index], f"seed={seed}"])
            self.seeds_run[index] = target
        return jobs

    def after_round(self, sweep_dir: Path, jobs: int, seconds: float, replicates: int) -> None:
        """Decide what the completed jobs decide; record the round in decisions.json."""
        number = len(self.rounds) + 1
        self.rounds.append({"round": number, "jobs": jobs, "seconds": round(seconds, 1)})
        by_key = {tuple(sorted(v.overrides)): v for v in group_variants(load_jobs(sweep_dir))}
        variants = [by_key.get(tuple(sorted([*self.plan.fixed, *v]))) for v in self.plan.variants]
        for index in self.open():
            outcome = self.outcomes[index - 1]
            outcome.seeds = self.seeds_run[index]
            found = None
            if variants[0] is not None and variants[index] is not None:
                found = compare_variants(variants[0], variants[index], replicates, factor="variant")
            if found is None:  # no seed completed by both yet (failed jobs)
                if self.seeds_run[index] >= self.rules.max_seeds:
                    outcome.decision, outcome.round = "undecided", number
                continue
            outcome.variant = variants[index].label
            outcome.diff, outcome.low, outcome.high = found.diff, found.ci_low, found.ci_high
            decided = verdict(found.ci_low, found.ci_high, self.rules.min_effect)
            if decided is not None:
                outcome.decision, outcome.round = decided, number
            elif self.seeds_run[index] >= self.rules.max_seeds:
                outcome.decision, outcome.round = "undecided", number
            log.info("round %d: %s vs %s: %+.4f [%+.4f, %+.4f] over %d seeds: %s", number,
                     outcome.variant, variants[0].label, found.diff, found.ci_low, found.ci_high,
                     len(found.seeds), outcome.decision)  # fmt: skip
        write_json(self.record(variants[0].label if variants[0] else ""), sweep_dir / DECISIONS)

    def record(self, baseline: str) -> dict[str, Any]:
        variants = len(self.plan.variants)
        return {
            "sweeper": SWEEPER,
            "rules": asdict(self.rules),
            "baseline": baseline,
            "outcomes": [asdict(o) for o in self.outcomes],
            "rounds": self.rounds,
            "jobs_run": sum(r["jobs"] for r in self.rounds),
            "fixed_seed_jobs": {str(k): variants * k for k in (*FIXED_SEEDS, self.rules.max_seeds)},
            "preset_seeds_set_aside": self.plan.ignored_seeds,
        }


def read_decisions(sweep_dir: Path) -> dict[str, Any] | None:
    path = sweep_dir / DECISIONS
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
