"""SIGINT (Ctrl-C) and SIGTERM (cluster preemption): stop cleanly after the current step.

The first signal only sets a flag: the step in flight finishes, the partial epoch is abandoned
(``last.pt`` from the last finished epoch stays the resume point, so a resumed run repeats
exactly what the uninterrupted one would do), summary.json says "interrupted" and the resume
command is printed. A second signal exits at once.

Inside a job that submitit started (``hydra/launcher=slurm`` or ``submitit_local``), the signal
that matters is submitit's own: SLURM sends it before the time limit and at preemption (SIGUSR2,
or ``SUBMITIT_PREEMPT_SIGNAL``), and SIGTERM is left to submitit, which ignores it because SLURM
sends it beside that signal. The run stops the same way, then ``hand_over`` gives the signal to
submitit's handler, which checkpoints the job (resubmits it as it was) and requeues it; the
requeued job runs in the same folder and continues from ``last.pt``.
"""

import contextlib
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

log = logging.getLogger(__name__)
SIGNALS = (signal.SIGINT, signal.SIGTERM)
Result = TypeVar("Result")
_received: list[str] = []  # names of the signals received while handlers are installed
_active: list[bool] = []  # non-empty inside stop_on_signals(): check() and until_stopped() act


class RunInterrupted(Exception):
    """Raised by ``check()`` once a stop was requested; app.py turns it into the summary."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


def preemption_signal() -> signal.Signals | None:
    """submitit's preemption and time-limit signal in a job it started; None elsewhere."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), None)


def handled_signals() -> tuple[signal.Signals, ...]:
    preemption = preemption_signal()
    if preemption is None:
        return SIGNALS
    return (signal.SIGINT, preemption)


def _handle(signum: int, frame) -> None:
    name = signal.Signals(signum).name
    if _received:
        log.warning("%s again: exiting now", name)
        raise KeyboardInterrupt
    _received.append(name)
    log.warning(
        "%s received: finishing the current step, then stopping (press Ctrl-C again to exit now)",
        name,
    )


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Install the handlers for the duration of a run (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # The flag outlives the block: whatever error a signal causes (e.g. a DataLoader worker
    # killed by the same SIGTERM) is then still reported as an interruption.
    clear()
    previous = {sig: signal.signal(sig, _handle) for sig in handled_signals()}
    _active.append(True)
    try:
        yield
    finally:
        _active.pop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def clear() -> None:
    """Forget signals received by an earlier run in this process."""
    _received.clear()


def stop_requested() -> str | None:
    """The name of the first signal received during the last run, if any."""
    return _received[0] if _received else None


def check() -> None:
    """Raise RunInterrupted if a stop was requested (inside ``stop_on_signals`` only: code that
    runs outside a run, e.g. a library call after an interrupted run, is not stopped)."""
    if _received and _active:
        raise RunInterrupted(_received[0])


def until_stopped(batches: Iterable) -> Iterator:
    """Yield batches until a stop is requested (checked between steps)."""
    for batch in batches:
        if _received and _active:
            return
        yield batch


def is_preemption(name: str | None) -> bool:
    """Whether the signal named ``name`` is submitit's preemption signal in a submitit job."""
    sig = preemption_signal()
    return sig is not None and name == sig.name


def hand_over(name: str) -> None:
    """After a run stopped for submitit's preemption signal (named ``name``), call the handler
    that signal had before the run: submitit's, which checkpoints and requeues the job and exits.
    Returns where there is none (outside submitit, or another signal)."""
    sig = preemption_signal()
    if sig is None or name != sig.name:
        return
    handler = signal.getsignal(sig)
    if callable(handler):
        handler(sig, None)


def interruptible(action: Callable[[Any], Result]) -> Callable[[Any], Result]:
    """A tool's action (evaluate, predict, export, audit) that stops at SIGINT/SIGTERM after the
    batch or file in flight, with one line and exit status 130 (SIGINT) or 143 (SIGTERM)."""

    @functools.wraps(action)
    def run(cfg: Any) -> Result:
        try:
            with stop_on_signals():
                return action(cfg)
        except (RunInterrupted, KeyboardInterrupt) as err:
            name = getattr(err, "signal_name", None) or stop_requested() or "KeyboardInterrupt"
            log.error("interrupted by %s: stopped before finishing; run the command again", name)
            sys.exit(130 if name in ("SIGINT", "KeyboardInterrupt") else 143)

    return run
