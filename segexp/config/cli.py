"""The command-line style every entry point shares.

Each one is a Hydra app on the config tree (``key=value`` overrides, ``--help``, ``--cfg job``,
shell completion), made by ``hydra_app``; a problem the user can fix is one log line naming the
key or file and the fix, and exit status 1 (``HYDRA_FULL_ERROR=1`` adds the traceback).
"""

import functools
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

import hydra
from omegaconf import DictConfig

from segexp.config.legacy import renamed_key, renamed_key_message
from segexp.config.paths import CONFIG_DIR
from segexp.errors import SegexpError
from segexp.storage.files import check_folder_writable

log = logging.getLogger("segexp")
Result = TypeVar("Result")


def report_error(err: SegexpError) -> None:
    log.error("%s", err, exc_info=err if os.environ.get("HYDRA_FULL_ERROR") == "1" else None)


def log_thread_error(args: threading.ExceptHookArgs) -> None:
    """An error in a library's background thread (TensorBoard's event writer, when the run folder
    is deleted under it) is one warning line: the main thread decides what the run's outcome is."""
    reason = str(args.exc_value).strip().splitlines()
    log.warning(
        "background thread %s stopped: %s%s",
        getattr(args.thread, "name", "?"),
        getattr(args.exc_type, "__name__", "error"),
        f": {reason[0]}" if reason else "",
    )


def check_command_line(args: list[str], run_folders: str | None) -> None:
    """What Hydra would answer with a riddle or a traceback, before it starts: a key renamed since
    an earlier version ("Key 'depth' is not in struct"), and the folder Hydra will create for the
    run or sweep (a path through a file, a read-only folder). ``run_folders``: where runs go by
    default (None: the command writes no run folder)."""
    overrides = [arg for arg in args if not arg.startswith("-") and ("=" in arg or arg[:1] == "~")]
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if renamed_key(key):
            raise SegexpError(renamed_key_message(key, override))
    if run_folders is None:
        return
    given = dict(override.split("=", 1) for override in overrides if "=" in override)
    multirun = "--multirun" in args or "-m" in args
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    default = f"{run_folders}/multirun" if multirun else run_folders
    folder = given.get(key) or given.get("resume") or default
    if "${" not in folder:  # an interpolation is Hydra's to resolve
        check_folder_writable(folder, key if key in given else "the output folder " + key)


def hydra_app(config_name: str, run_folders: str | None = None) -> Callable:
    """``hydra.main`` on segexp's config tree (conf/<config_name>.yaml), after
    ``check_command_line``; every entry point is made by it."""

    def decorate(task: Callable[[DictConfig], Result]) -> Callable[[], Result]:
        app = hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name=config_name)
        hydra_main = app(task)

        @functools.wraps(task)
        def main() -> Result:
            if os.environ.get("HYDRA_FULL_ERROR") != "1":
                threading.excepthook = log_thread_error
            try:
                check_command_line(sys.argv[1:], run_folders)
            except SegexpError as err:  # logging is not configured before Hydra runs
                print(f"[segexp][ERROR] - {err}", file=sys.stderr)
                sys.exit(1)
            return hydra_main()

        return main

    return decorate


def run_tool(action: Callable[[DictConfig], Result], cfg: DictConfig) -> Result:
    """``action(cfg)``; a SegexpError becomes one error line and exit status 1."""
    try:
        return action(cfg)
    except SegexpError as err:
        report_error(err)
        sys.exit(1)
