"""The command line every entry point shares: checks before Hydra starts."""

import logging
import threading

import pytest

from segexp.config.cli import check_command_line, log_thread_error
from segexp.errors import SegexpError
from tests.conftest import run_cli


def test_an_old_key_on_the_command_line_names_its_new_one():
    for given, fix in [
        ("model.depth=3", "give model.net.depth=3"),
        ("+model.depth=3", "give model.net.depth=3"),
        ("optimizer.encoder_lr_mult=0.1", "give model.encoder_lr_mult=0.1"),
        ("~logger.flush_secs", "give ~logger.tensorboard.flush_secs"),
        ("model.encoder_name=resnet18,resnet34", "give model.net.encoder_name=resnet18,resnet34"),
    ]:
        with pytest.raises(SegexpError) as err:
            check_command_line(["--multirun", given], run_folders=None)
        assert str(err.value).startswith(f"{given.lstrip('+~').split('=')[0]} is now ")
        assert str(err.value).endswith(fix)
    check_command_line(["model.net.depth=3", "trainer.epochs=2"], run_folders=None)  # no error


@pytest.mark.slow
def test_an_old_key_is_one_line_from_every_entry_point(tmp_path):
    for module in ("segexp", "segexp.evaluate", "segexp.audit"):
        result = run_cli("model.depth=3", cwd=tmp_path, module=module)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            "[segexp][ERROR] - model.depth is now model.net.depth (segexp renamed it): give "
            "model.net.depth=3"
        ]
    assert list(tmp_path.iterdir()) == []  # Hydra made no folder


def test_an_error_in_a_background_thread_is_one_warning_line(monkeypatch, caplog):
    """As TensorBoard's event writer thread fails when the run folder is deleted under it."""
    monkeypatch.setattr(threading, "excepthook", log_thread_error)

    def fail() -> None:
        raise FileNotFoundError("No such file or directory: 'events.out.tfevents'")

    with caplog.at_level(logging.WARNING):
        thread = threading.Thread(target=fail, name="EventFileWriter")
        thread.start()
        thread.join()
    assert [r.getMessage() for r in caplog.records] == [
        "background thread EventFileWriter stopped: FileNotFoundError: No such file or "
        "directory: 'events.out.tfevents'"
    ]
