"""``hydra/sweeper=optuna_study`` (hparams_search=optuna): Hydra's Optuna sweeper, whose study
several processes can share through ``hydra.sweeper.storage`` (segexp/sweeps/study.py does the
work; a Hydra plugin must be defined in the ``hydra_plugins`` package to be found)."""

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore

try:  # the sweep extra (pip install 'segexp[sweep]'); without it segexp runs without this plugin
    from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
except ImportError:
    OptunaSweeperConf = OptunaSweeper = None

if OptunaSweeper is not None:

    @dataclass
    class StudySweeperConf(OptunaSweeperConf):
        _target_: str = "hydra_plugins.segexp_sweeper.study_sweeper.StudySweeper"
        # Seconds between two marks of a running trial in the storage (Optuna's heartbeat);
        # null: no marks, and a trial of a process that died stays "running".
        heartbeat_interval: int | None = 60
        # Seconds without a mark after which a running trial is failed; null: twice the interval.
        grace_period: int | None = None

    class StudySweeper(OptunaSweeper):
        """OptunaSweeper's arguments, and the heartbeat's two."""

        def __init__(
            self,
            sampler: Any,
            direction: Any,
            storage: Any | None,
            study_name: str | None,
            n_trials: int,
            n_jobs: int,
            max_failure_rate: float,
            search_space: Any | None,
            custom_search_space: str | None,
            params: Any | None,
            heartbeat_interval: int | None = 60,
            grace_period: int | None = None,
        ) -> None:
            from segexp.sweeps.study import SharedStudySweeperImpl  # when used, as Hydra's do

            self.sweeper = SharedStudySweeperImpl(
                sampler, direction, storage, study_name, n_trials, n_jobs, max_failure_rate,
                search_space, custom_search_space, params,
                heartbeat_interval=heartbeat_interval, grace_period=grace_period,
            )  # fmt: skip

    ConfigStore.instance().store(
        group="hydra/sweeper", name="optuna_study", node=StudySweeperConf, provider="segexp"
    )
