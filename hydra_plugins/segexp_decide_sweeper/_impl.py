"""Rounds of jobs through the configured launcher, decided by segexp.sweeps.adaptive."""

import logging
import sys
import time
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from segexp.config.cli import report_error
from segexp.errors import SegexpError
from segexp.sweeps.adaptive import AdaptiveSeeds, Rules, plan

log = logging.getLogger("segexp")


class DecideSweeperImpl(Sweeper):
    def __init__(
        self,
        params: DictConfig | None,
        first_round: int,
        seeds_per_round: int,
        max_seeds: int,
        min_effect: float,
        replicates: int,
    ) -> None:
        self.params = OmegaConf.to_container(params, resolve=False) if params else None
        self.rules = Rules(first_round, seeds_per_round, max_seeds, min_effect)
        self.replicates = replicates
        self.config: DictConfig | None = None
        self.launcher = None
        self.job_idx = 0

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        try:
            self.rules.check()
            state = AdaptiveSeeds(plan(self.params, arguments), self.rules)
        except SegexpError as err:  # the sweep callback checks first; this is for a setup without
            report_error(err)
            sys.exit(1)
        if state.plan.ignored_seeds is not None:
            log.info("hydra/sweeper=segexp_decide chooses the seeds (up to max_seeds=%d): the "
                     "preset's seed=%s is set aside", self.rules.max_seeds,
                     state.plan.ignored_seeds)  # fmt: skip
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        returns = []
        while jobs := state.next_jobs():
            self.validate_batch_is_legal(jobs)
            started = time.perf_counter()
            log.info("round %d: %d jobs", len(state.rounds) + 1, len(jobs))
            returns.append(self.launcher.launch(jobs, initial_job_idx=self.job_idx))
            self.job_idx += len(jobs)
            state.after_round(sweep_dir, len(jobs), time.perf_counter() - started, self.replicates)
        return returns
