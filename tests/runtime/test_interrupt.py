"""Signals: the first Ctrl-C asks the run to stop, the second exits at once."""

import os
import signal

import pytest

from segexp.runtime import interrupt


def test_second_ctrl_c_exits_at_once():
    before = signal.getsignal(signal.SIGINT)  # default, or ignored when started in the background
    with interrupt.stop_on_signals():
        os.kill(os.getpid(), signal.SIGINT)
        assert interrupt.stop_requested()
        with pytest.raises(interrupt.RunInterrupted):
            interrupt.check()
        assert list(interrupt.until_stopped([1, 2, 3])) == []
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert interrupt.stop_requested() == "SIGINT"  # kept for reporting after the block
    assert signal.getsignal(signal.SIGINT) is before  # the handler in place before the run
    interrupt.clear()  # the next test's fit() in this process must not see it


def test_in_a_submitit_job_its_preemption_signal_stops_the_run_and_goes_back_to_submitit(
    monkeypatch,
):
    """submitit installs its handler for SIGUSR2 (requeue) and ignores SIGTERM; a run stops at
    SIGUSR2 after the step in flight, then hands the signal back to submitit's handler."""
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")
    requeued = []

    def submitit_requeue(signum, frame):
        requeued.append(signal.Signals(signum).name)

    def submitit_bypass(signum, frame):
        pass

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGUSR2, signal.SIGTERM)}
    signal.signal(signal.SIGUSR2, submitit_requeue)
    signal.signal(signal.SIGTERM, submitit_bypass)
    try:
        with interrupt.stop_on_signals():
            assert signal.getsignal(signal.SIGTERM) is submitit_bypass  # left to submitit
            os.kill(os.getpid(), signal.SIGUSR2)
            with pytest.raises(interrupt.RunInterrupted, match="SIGUSR2"):
                interrupt.check()
            assert requeued == []  # not while the step finishes
        interrupt.hand_over("SIGTERM")  # not submitit's signal: nothing to hand over
        assert requeued == []
        interrupt.hand_over("SIGUSR2")
        assert requeued == ["SIGUSR2"]
        monkeypatch.delenv("SUBMITIT_EXECUTOR")
        interrupt.hand_over("SIGUSR2")  # outside submitit, SIGUSR2 is nobody's
        assert requeued == ["SIGUSR2"]
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        interrupt.clear()
