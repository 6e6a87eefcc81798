"""The Hydra sweeper: a thin shell around ``_impl`` (as Hydra's own sweeper plugins are)."""

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class DecideSweeper(Sweeper):
    """Runs each variant on seeds round by round until its comparison with the baseline is
    decided (segexp/sweeps/adaptive.py)."""

    def __init__(self, **settings: Any) -> None:
        """``settings``: the keys of ``config.DecideSweeperConf``, as Hydra composed them."""
        from ._impl import DecideSweeperImpl

        self.sweeper = DecideSweeperImpl(**settings)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.sweeper.sweep(arguments)
