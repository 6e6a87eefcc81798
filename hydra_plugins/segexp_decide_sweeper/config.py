"""The settings of ``hydra/sweeper=segexp_decide`` (segexp/sweeps/adaptive.py has the rules)."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore


@dataclass
class DecideSweeperConf:
    _target_: str = "hydra_plugins.segexp_decide_sweeper.decide_sweeper.DecideSweeper"
    # The variants, as for Hydra's basic sweeper (e.g. aug: none,strong); the first value of
    # each key makes the baseline. A seed list here (an experiment preset's) is set aside.
    params: dict[str, str] | None = None
    first_round: int = 2  # seeds every variant runs before the first decision
    seeds_per_round: int = 1  # seeds added to each undecided variant per round
    max_seeds: int = 5  # a variant still undecided at this many seeds stays undecided
    # The smallest difference in test mIoU that matters: within ±min_effect is "equivalent".
    min_effect: float = 0.01
    replicates: int = 2000  # bootstrap resamples of the images-only interval


ConfigStore.instance().store(
    group="hydra/sweeper", name="segexp_decide", node=DecideSweeperConf, provider="segexp"
)
