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
