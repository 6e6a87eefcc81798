"""The fan-out over loggers: one logger's failure is named once and never stops the others."""

import logging

from segexp.training.loggers.fanout import Writers


class Recorder:
    def __init__(self, fail_on: str = "") -> None:
        self.calls: list[str] = []
        self.fail_on = fail_on

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name == self.fail_on:
            raise ValueError(f"{name} refused\nsecond line of a long message")

    def add_scalar(self, tag, value, step=None):
        self._call("add_scalar")

    def add_text(self, tag, text, step=None):
        self._call("add_text")

    def flush(self):
        self._call("flush")

    def close(self):
        self._call("close")


def test_a_failing_logger_is_named_once_and_the_others_get_every_call(caplog):
    first, failing, last = Recorder(), Recorder(fail_on="add_scalar"), Recorder()
    writers = Writers({"tensorboard": first, "mlflow": failing, "csv": last})
    with caplog.at_level(logging.WARNING):
        for step in range(3):
            writers.add_scalar("train/loss", 1.0, step)
        writers.add_text("config", "text")
        writers.flush()
        writers.close()
    every_call = ["add_scalar"] * 3 + ["add_text", "flush", "close"]
    assert first.calls == last.calls == every_call
    assert failing.calls == ["add_scalar", "close"]  # nothing more after its failure but close
    assert writers.writers == [first, last]
    assert writers.errors == [
        {"logger": "mlflow", "call": "add_scalar", "error": "ValueError: add_scalar refused"}
    ]
    (warning,) = caplog.messages
    assert warning.startswith("logger mlflow failed in add_scalar") and "\n" not in warning


def test_a_logger_failing_again_in_close_is_recorded_once():
    failing = Recorder(fail_on="flush")
    failing.close = lambda: failing._call("flush")  # its close fails the same way
    writers = Writers({"mlflow": failing})
    writers.flush()
    writers.close()
    assert failing.calls == ["flush", "flush"]
    assert writers.errors == [
        {"logger": "mlflow", "call": "flush", "error": "ValueError: flush refused"}
    ]
