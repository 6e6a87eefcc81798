"""One Optuna study searched by two processes at once through a PostgreSQL server (as from two
machines): trials numbered once, none run twice, n_trials the study's total, a folder per trial,
one report over the whole study. (SQLite, with a process killed mid-trial and one joining
later: faults/test_shared_study.py.)"""

import json
import re
from pathlib import Path

import pytest

from tests.conftest import TINY, in_a_job, segexp_cli, start_cli

optuna = pytest.importorskip("optuna")

from segexp.sweeps.study import SKIPPED_ATTR  # noqa: E402 (needs optuna)

pytestmark = pytest.mark.slow

N_TRIALS = 4
SEARCH = [*TINY, "trainer.epochs=1", "logger=none", "trainer.print_config=false",
          "hparams_search=optuna", f"hydra.sweeper.n_trials={N_TRIALS}"]  # fmt: skip


def search_together(storage: str, name: str, root: Path, capsys) -> list[str]:
    """Two searches of one study side by side: one in a new process, one in this one (which
    has its imports already); their console output."""
    args = ["--multirun", *SEARCH, f"hydra.sweeper.storage={storage}",
            f"hydra.sweeper.study_name={name}"]  # fmt: skip
    sweep_dir = root / "outputs" / "multirun" / f"study_{name}"
    other = start_cli(*args, cwd=root, log=root / "other.log")
    try:
        in_a_job(sweep_dir, other)  # its start-up takes longer than a trial here
        here = segexp_cli(*args, f"hydra.sweep.dir={sweep_dir}")
        there = other.wait(timeout=300)
    finally:
        if other.poll() is None:
            other.kill()
    outputs = [(root / "other.log").read_text(), "".join(capsys.readouterr())]
    assert [there, here] == [0, 0], [out[-2000:] for out in outputs]
    return outputs


def check_one_study(storage: str, name: str, sweep_dir: Path, outputs: list[str]) -> None:
    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    # Two processes that ask at the same moment for the last trial: the one numbered past
    # n_trials is told failed, with the reason, and never runs.
    skipped = [t for t in trials if SKIPPED_ATTR in t.user_attrs]
    assert all(t.number >= N_TRIALS and not t.params for t in skipped)
    assert {t.state for t in skipped} <= {optuna.trial.TrialState.FAIL}
    trials = [t for t in trials if SKIPPED_ATTR not in t.user_attrs]
    assert sorted(t.number for t in trials) == list(range(N_TRIALS))  # n_trials in all, once
    assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}
    assert len({tuple(sorted(t.params.items())) for t in trials}) == N_TRIALS  # none twice
    folders = {}
    for folder in sweep_dir.iterdir():
        if folder.is_dir() and (number := re.match(r"(\d+)_", folder.name)):
            assert int(number[1]) not in folders, folder  # one folder per trial number
            folders[int(number[1])] = folder
    assert sorted(folders) == list(range(N_TRIALS))
    for trial in trials:
        summary = json.loads((folders[trial.number] / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["val"]["mIoU"] == trial.value
        assert trial.user_attrs["run_dir"] == str(folders[trial.number])
        for key, value in trial.params.items():
            assert f"{key}={value}" in summary["overrides"]
    ran = [int(re.search(r"this process ran (\d+)", out)[1]) for out in outputs]
    assert sum(ran) == N_TRIALS and min(ran) >= 1  # both processes searched
    report = (sweep_dir / "report.md").read_text()
    assert f"{N_TRIALS} jobs: {N_TRIALS} completed" in report
    assert not (sweep_dir / ".segexp.lock").exists()  # the last process removed it


def test_two_processes_search_one_postgresql_study(tmp_path, postgres_url, capsys):
    outputs = search_together(postgres_url, "lr_pg", tmp_path, capsys)
    check_one_study(postgres_url, "lr_pg", tmp_path / "outputs/multirun/study_lr_pg", outputs)
