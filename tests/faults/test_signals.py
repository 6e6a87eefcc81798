"""SIGTERM anywhere in a run: it stops within a batch, keeps the best val, says how to resume."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from segexp.storage.checkpoint import load_checkpoint
from tests.conftest import REPO, TINY, TINY_RUN
from tests.faults.conftest import QUICK, blob, folder

pytestmark = pytest.mark.slow

SIGTERM_AT = """
import os, signal, sys
import segexp.training.fit as fit, segexp.data.scan as scan
where, calls = os.environ["SIGTERM_AT"], []
def wrap(module, name, when):
    real = getattr(module, name)
    def call(*args, **kwargs):
        calls.append(name)
        if when(calls):
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)
    setattr(module, name, call)
if where == "validation 2":  # the second validation pass
    wrap(fit, "evaluate", lambda c: c.count("evaluate") == 2)
elif where == "test":  # the final test pass (training/test_pass.py)
    wrap(fit, "score_test", lambda c: c.count("score_test") == 1)
elif where == "preflight":
    wrap(scan, "_one", lambda c: len(c) == 1)
from segexp.train import main
sys.argv = ["segexp", *sys.argv[1:]]
main()
"""


def interrupted_run(tmp_path: Path, where: str, *args: str) -> tuple[Path, str]:
    run = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-c", SIGTERM_AT, *(args or QUICK), f"hydra.run.dir={run}"],
        env={**os.environ, "PYTHONPATH": str(REPO), "SIGTERM_AT": where},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 143, result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    return run, result.stdout


@pytest.mark.parametrize("where", ["validation 2", "test"])
def test_sigterm_in_an_evaluation_pass_stops_it_and_keeps_the_best_val(tmp_path, where):
    run, _ = interrupted_run(tmp_path, where)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["reason"] == "SIGTERM"
    best = load_checkpoint(run / "checkpoints" / "best.pt")["progress"]
    as_json = json.loads(json.dumps(best["best_val"]).replace("NaN", "null"))  # as written
    assert summary["val"] == as_json and summary["best_epoch"] == best["best_epoch"]
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == (
        1 if where == "validation 2" else 2
    )
    assert "test" not in summary


def test_sigterm_during_the_file_check_stops_before_training(tmp_path):
    data = folder(tmp_path / "data" / "train", {"a.png": blob((0, 1)), "b.png": blob((0, 1))})
    for split in ("val", "test"):
        shutil.copytree(data, tmp_path / "data" / split)
    run, out = interrupted_run(
        tmp_path, "preflight", *TINY_RUN, "logger=none", "dataset=folder",
        f"dataset.root={tmp_path / 'data'}", "dataset.batch_size=2", "dataset.num_workers=0",
        "dataset.in_channels=1", "dataset.mean=[0]", "dataset.std=[1]",
        "dataset.image_size=[16,16]",
    )  # fmt: skip
    assert "interrupted by SIGTERM; no epoch finished" in out
    assert not (run / "checkpoints").exists()
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"


def test_sigterm_saves_and_prints_the_resume_command(tmp_path):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "segexp", *TINY, "trainer.epochs=500", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    last = run_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 240
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=240)
    assert process.returncode == 143, output[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["reason"] == "SIGTERM"
    assert f"python -m segexp resume={run_dir}" in summary["resume"]
    assert f"python -m segexp resume={run_dir}" in output
    assert "Traceback" not in output
    assert 1 <= load_checkpoint(last)["epoch"] < 500
