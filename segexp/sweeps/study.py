"""One Optuna study searched by several sweeper processes, on one machine or many.

Hydra's maintainers advise running one search from several machines as several sweeper processes
on one Optuna storage. Hydra's Optuna sweeper, though, counts ``n_trials`` per process, numbers
each process's jobs from 0 and gives every process the same sampler seed: N processes would run
N x n_trials trials, write N job folders called ``0_...`` and draw the same first parameters N
times. With ``hydra.sweeper.storage`` set, this sweeper keeps Hydra's (its search space, its trial
configuration, its launchers, its results file) and changes how trials are taken from the study:

- ``n_trials`` is the study's total: a process asks for a trial while the study holds fewer; a
  trial numbered past it (two processes asked at the same moment) is told failed before it runs;
- a job is numbered by its trial (folder ``<trial number>_...``), which no other process has;
- each process seeds its sampler with ``seed + <the number of its first trial>``: the first
  process draws what a process alone would, the others draw otherwise;
- Optuna's heartbeat marks the trials in flight: the trials of a process that died are failed by
  the next process that asks (after ``grace_period``), and a process stopped by Ctrl-C or a
  signal fails its own at once;
- the search space and directions are recorded in the study: a process searching another space
  under the same name is refused with one line.

Without a storage the study lives in one process and Hydra's own loop runs it unchanged.
"""

import contextlib
import json
import logging
import socket
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import (
    OptunaSweeperImpl,
    create_params_from_overrides,
)
from omegaconf import OmegaConf
from optuna.distributions import BaseDistribution, distribution_to_json
from optuna.exceptions import ExperimentalWarning
from optuna.samplers import GridSampler
from optuna.trial import Trial, TrialState

from segexp.config.cli import report_error
from segexp.errors import SegexpError
from segexp.storage.files import atomic_write
from segexp.sweeps.storage import open_storage, shown

log = logging.getLogger(__name__)
SPACE_ATTR = "segexp:search_space"  # the study's user attribute that records what it searches
SKIPPED_ATTR = "segexp:skipped"  # why a trial was told failed without running


def search_space_record(
    space: dict[str, BaseDistribution], directions: Sequence[str]
) -> dict[str, Any]:
    """What a study searches, as JSON (Optuna's own encoding of each distribution)."""
    record = {
        "directions": [str(d) for d in directions],
        "params": {name: json.loads(distribution_to_json(d)) for name, d in sorted(space.items())},
    }
    return json.loads(json.dumps(record))  # as the storage will give it back


def _differences(theirs: dict[str, Any], mine: dict[str, Any]) -> list[str]:
    found = []
    if theirs.get("directions") != mine["directions"]:
        found.append(f"directions {theirs.get('directions')} there, {mine['directions']} here")
    params_there, params_here = theirs.get("params", {}), mine["params"]
    for name in sorted(set(params_there) | set(params_here)):
        there, here = params_there.get(name), params_here.get(name)
        if there != here:
            found.append(f"{name}: {_describe(there)} there, {_describe(here)} here")
    return found


def _describe(encoded: dict[str, Any] | None) -> str:
    if encoded is None:
        return "not searched"
    args = ", ".join(f"{k}={v}" for k, v in encoded.get("attributes", {}).items())
    return f"{encoded.get('name', '?')}({args})"


def check_search_space(study: optuna.Study, record: dict[str, Any], storage_url: str) -> None:
    """Record what the study searches on first use; refuse a process that searches otherwise
    (its trials would not be samples of one objective over one space)."""
    theirs = study.user_attrs.get(SPACE_ATTR)
    if theirs is None:
        study.set_user_attr(SPACE_ATTR, record)
        theirs = study.user_attrs.get(SPACE_ATTR, record)  # two processes may have raced
    differences = _differences(theirs, record)
    if differences:
        raise another_space(study.study_name, storage_url, differences)


def another_space(name: str, storage_url: str, differences: list[str]) -> SegexpError:
    return SegexpError(
        f"Optuna study '{name}' in {shown(storage_url)} searches another space "
        f"({'; '.join(differences)}): give another hydra.sweeper.study_name, or search the "
        "study's own space"
    )


def worker_sampler(sampler_config: Any, sampler: Any, first_trial: int) -> Any:
    """The sampler of a process whose first trial is ``first_trial``: the configured seed moved
    by that number, so that processes sharing a study draw different parameters; unseeded
    samplers, and the first process, keep the configured one."""
    seed = OmegaConf.select(sampler_config, "seed") if sampler_config is not None else None
    if seed is None or first_trial == 0:
        return sampler
    return instantiate(sampler_config, seed=int(seed) + first_trial)


@contextlib.contextmanager
def heartbeat(storage: Any, trials: Sequence[Trial], interval: int | None) -> Iterator[None]:
    """Mark ``trials`` alive every ``interval`` seconds while they run (Optuna's heartbeat, as
    ``study.optimize`` records it), from a thread, so a long job does not delay it."""
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            for trial in trials:
                storage.record_heartbeat(trial._trial_id)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name="optuna-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def consecutive(numbers: Sequence[int]) -> list[tuple[int, int]]:
    """(first index, length) of each run of consecutive trial numbers: the launcher numbers a
    batch's jobs from one starting number, so a batch interleaved with another process's trials
    is launched as several batches."""
    runs: list[tuple[int, int]] = []
    for index, number in enumerate(numbers):
        if runs and numbers[runs[-1][0]] + runs[-1][1] == number:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((index, 1))
    return runs


def trial_values(ret: JobReturn, directions: Sequence[str]) -> list[float]:
    """The objective value(s) a job returned (segexp returns the best val mIoU; a failed run
    returns nothing): a ValueError when they are missing, as in Hydra's sweeper."""
    value = ret.return_value
    values = list(value) if isinstance(value, list | tuple) else [value]
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"the job returned {value!r}, not a number") from None
    if len(values) != len(directions):
        raise ValueError(f"the job returned {len(values)} values for {len(directions)} directions")
    return values


class SharedStudySweeperImpl(OptunaSweeperImpl):
    """Hydra's Optuna sweeper; with a storage, the study is shared as the module says."""

    def __init__(
        self, *args: Any, heartbeat_interval: int | None = 60, grace_period: int | None = None
    ) -> None:
        super().__init__(*args)
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period

    def sweep(self, arguments: list[str]) -> None:
        if not self.storage:
            return super().sweep(arguments)
        try:
            self._sweep_shared(arguments)
        except SegexpError as err:
            report_error(err)
            raise SystemExit(1) from None

    def _search_space(self, arguments: list[str]) -> tuple[dict, dict]:
        """Hydra's search space and fixed parameters from the config and the command line."""
        self._process_searchspace_config()
        space, fixed = create_params_from_overrides(
            [*self._parse_sweeper_params_config(), *arguments]
        )
        merged = dict(self.search_space_distributions or {})
        merged.update(space)
        for name in fixed:
            merged.pop(name, None)
        return merged, fixed

    def _open_study(self, space: dict, directions: list[str]) -> optuna.Study:
        if not self.study_name:
            raise SegexpError(
                f"hydra.sweeper.storage={shown(self.storage)} needs hydra.sweeper.study_name: "
                "the processes that share a study find it by its name"
            )
        if isinstance(self.sampler, GridSampler) or getattr(self.sampler, "func", None) is (
            GridSampler
        ):
            raise SegexpError(
                "hydra/sweeper/sampler=grid cannot share a study (hydra.sweeper.storage): list "
                "the values instead, e.g. optimizer.lr=1e-3,1e-4 (a plain sweep)"
            )
        storage = open_storage(self.storage, self.heartbeat_interval, self.grace_period)
        try:
            study = optuna.create_study(
                study_name=self.study_name,
                storage=storage,
                sampler=self.sampler,
                directions=directions,
                load_if_exists=True,
            )
        except ValueError:  # Optuna's own refusal: the study goes the other direction
            there = optuna.load_study(study_name=self.study_name, storage=storage).directions
            there = [d.name.lower() for d in there]
            raise another_space(
                self.study_name, self.storage, [f"directions {there} there, {directions} here"]
            ) from None
        check_search_space(study, search_space_record(space, directions), self.storage)
        return study

    def _ask(self, study: optuna.Study, count: int) -> list[Trial]:
        """Up to ``count`` new trials numbered below ``n_trials``."""
        trials = []
        for _ in range(count):
            trial = study.ask()
            if trial.number >= self.n_trials:
                trial.set_user_attr(SKIPPED_ATTR, f"numbered past n_trials={self.n_trials}")
                study.tell(trial, state=TrialState.FAIL)
                break
            trials.append(trial)
        return trials

    def _launch(self, trials: list[Trial], overrides: Sequence[Sequence[str]]) -> list[JobReturn]:
        numbers = [trial.number for trial in trials]
        returns: list[JobReturn] = []
        for start, length in consecutive(numbers):
            batch = list(overrides[start : start + length])
            returns += self.launcher.launch(batch, initial_job_idx=numbers[start])
        return returns

    def _tell(
        self, study: optuna.Study, trials: list[Trial], returns: list[JobReturn], directions
    ) -> list[Exception]:
        failures = []
        for trial, ret in zip(trials, returns, strict=True):
            output_dir = OmegaConf.select(ret.hydra_cfg or {}, "hydra.runtime.output_dir")
            trial.set_user_attr("host", socket.gethostname())
            trial.set_user_attr("run_dir", str(output_dir))
            try:
                study.tell(trial, values=trial_values(ret, directions))
            except Exception as err:  # as Hydra's sweeper: a failed trial, the search goes on
                study.tell(trial, state=TrialState.FAIL)
                log.warning("trial %d failed: %s", trial.number, err)
                failures.append(err)
        return failures

    def _sweep_shared(self, arguments: list[str]) -> None:
        space, fixed = self._search_space(arguments)
        directions = self._get_directions()
        study = self._open_study(space, directions)
        storage = study._storage
        log.info(
            "study '%s' in %s: %d trials so far; this process runs trials until it holds %d",
            study.study_name, shown(self.storage), len(study.get_trials(deepcopy=False)),
            self.n_trials,
        )  # fmt: skip
        ran = 0
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)  # trials of processes that died
            held = len(study.get_trials(deepcopy=False))
            if held >= self.n_trials:
                break
            trials = self._ask(study, min(self.n_jobs, self.n_trials - held))
            if not trials:
                break
            if ran == 0:
                study.sampler = worker_sampler(
                    OmegaConf.select(self.config, "hydra.sweeper.sampler"),
                    study.sampler,
                    trials[0].number,
                )
            overrides = self._configure_trials(trials, space, fixed)
            try:
                with heartbeat(storage, trials, self.heartbeat_interval):
                    returns = self._launch(trials, overrides)
            except BaseException:  # Ctrl-C, a signal, a launcher's error: not running forever
                for trial in trials:
                    with contextlib.suppress(Exception):  # the first error is the one to see
                        study.tell(trial, state=TrialState.FAIL)
                raise
            ran += len(trials)
            failures = self._tell(study, trials, returns, directions)
            if len(failures) / len(returns) > self.max_failure_rate:
                log.error(
                    "%d of %d trials failed (max_failure_rate=%s)",
                    len(failures), len(returns), self.max_failure_rate,
                )  # fmt: skip
                for ret in returns:
                    ret.return_value  # noqa: B018 (raises the job's own error, as Hydra does)
        self._finish(study, ran)

    def _finish(self, study: optuna.Study, ran: int) -> None:
        trials = study.get_trials(deepcopy=False)
        states = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
        counts = ", ".join(f"{n} {state}" for state, n in states.items() if n)
        log.info(
            "study '%s': %d trials (%s); this process ran %d",
            study.study_name, len(trials), counts, ran,
        )  # fmt: skip
        if not any(t.state == TrialState.COMPLETE for t in trials):
            return
        if len(study.directions) == 1:
            best = study.best_trial
            results = {"name": "optuna", "best_params": best.params, "best_value": best.value}
            log.info("Best parameters: %s", best.params)
            log.info("Best value: %s", best.value)
        else:
            pareto = [{"params": t.params, "values": t.values} for t in study.best_trials]
            results = {"name": "optuna", "solutions": pareto}
        # Every process of a shared study writes it into the same sweep folder at its end.
        path = Path(self.config.hydra.sweep.dir) / "optimization_results.yaml"
        with atomic_write(path) as f:
            f.write(OmegaConf.to_yaml(OmegaConf.create(results)))
