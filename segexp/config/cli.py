"""The command-line style every entry point shares.

Each one is a Hydra app on the config tree (``key=value`` overrides, ``--help``, ``--cfg job``,
shell completion); a problem the user can fix is one log line naming the key or file and the
fix, and exit status 1 (``HYDRA_FULL_ERROR=1`` adds the traceback).
"""

import logging
import os
import sys
from collections.abc import Callable
from typing import TypeVar

from omegaconf import DictConfig

from segexp.errors import SegexpError

log = logging.getLogger("segexp")
Result = TypeVar("Result")


def report_error(err: SegexpError) -> None:
    log.error("%s", err, exc_info=err if os.environ.get("HYDRA_FULL_ERROR") == "1" else None)


def run_tool(action: Callable[[DictConfig], Result], cfg: DictConfig) -> Result:
    """``action(cfg)``; a SegexpError becomes one error line and exit status 1."""
    try:
        return action(cfg)
    except SegexpError as err:
        report_error(err)
        sys.exit(1)
