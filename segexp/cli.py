"""`key=value` command lines for the tools that work on a finished run (evaluate, predict, export).

These tools read the run's own config from its checkpoint, so they take a handful of plain
options rather than composing a new Hydra config.
"""

import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from segexp.errors import SegexpError

log = logging.getLogger("segexp")
TRUE, FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


def _convert(key: str, text: str, default: Any) -> Any:
    if text.lower() in {"null", "none"}:
        return None
    try:
        if isinstance(default, bool):
            if text.lower() not in TRUE | FALSE:
                raise ValueError
            return text.lower() in TRUE
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        kind = "true or false" if isinstance(default, bool) else type(default).__name__
        raise SegexpError(f"{key}={text!r}: expected {kind}") from None
    return text


def parse_args(argv: Sequence[str], defaults: dict[str, Any], usage: str) -> dict[str, Any]:
    """``["run=out/x", "tta=flip"]`` -> defaults updated; unknown keys and bad values raise.

    ``--name`` is accepted as ``name=true`` (e.g. ``--save-probs``).
    """
    options = dict(defaults)
    for arg in argv:
        if arg in {"-h", "--help"}:
            print(usage)
            sys.exit(0)
        if arg.startswith("--") and "=" not in arg:
            arg = arg[2:].replace("-", "_") + "=true"
        key, sep, value = arg.lstrip("-").partition("=")
        key = key.replace("-", "_")
        if not sep or key not in defaults:
            raise SegexpError(
                f"unknown argument {arg!r}: options are {', '.join(f'{k}=' for k in defaults)}"
            )
        options[key] = _convert(key, value, defaults[key])
    missing = [k for k, v in options.items() if v == "???"]
    if missing:
        raise SegexpError(f"{missing[0]}=... is required (all options: --help)")
    return options


def run_tool(main: Callable[[list[str]], Any]) -> None:
    """Call ``main(argv)``; a SegexpError becomes one log line and exit status 1."""
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
    )
    try:
        main(sys.argv[1:])
    except SegexpError as err:
        log.error("%s", err)
        sys.exit(1)
