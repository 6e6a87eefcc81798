"""A study shared by several processes (SQLite): one killed mid-trial, a storage that cannot be
opened, a study of the same name that searches another space."""

import json
import re
import signal
import threading
import time

import pytest

from tests.conftest import TINY, in_a_job, segexp_cli, start_cli

optuna = pytest.importorskip("optuna")

from segexp.sweeps.storage import open_storage  # noqa: E402 (needs optuna)
from segexp.sweeps.study import check_search_space, search_space_record  # noqa: E402

SEARCH = [*TINY, "trainer.epochs=1", "logger=none", "trainer.print_config=false",
          "hparams_search=optuna", "hydra.sweeper.heartbeat_interval=1",
          "hydra.sweeper.grace_period=1"]  # fmt: skip
SLOW = "dataset.train.num_samples=4000"  # a trial long enough to be killed in


def only_line(capsys, *parts: str) -> None:
    """The command printed one line (in Hydra's sweep format, [HYDRA]), with every part."""
    out = capsys.readouterr()
    lines = [line for line in (out.out + out.err).splitlines() if line.strip()]
    assert "Traceback" not in out.out + out.err and len(lines) == 1, lines
    for part in parts:
        assert part in lines[0], lines[0]


@pytest.mark.slow
def test_a_process_killed_mid_trial_leaves_it_failed_the_other_goes_on_a_new_one_joins(
    tmp_path, capsys
):
    storage = f"sqlite:///{tmp_path}/study.db"
    common = ["--multirun", *SEARCH, f"hydra.sweeper.storage={storage}",
              "hydra.sweeper.study_name=s"]  # fmt: skip
    sweep_dir = tmp_path / "outputs/multirun/study_s"
    killed = start_cli(*common, "hydra.sweeper.n_trials=4", SLOW, cwd=tmp_path, log=tmp_path / "k")
    killed_at = []

    def kill_mid_trial() -> None:  # once this process runs a trial too
        in_a_job(sweep_dir)
        killed.kill()  # SIGKILL in the middle of its trial
        killed_at.append(time.monotonic())

    try:
        in_a_job(sweep_dir, killed)
        killer = threading.Thread(target=kill_mid_trial, daemon=True)
        killer.start()
        capsys.readouterr()
        other = segexp_cli(*common, "hydra.sweeper.n_trials=4", f"hydra.sweep.dir={sweep_dir}")
        other_console = "".join(capsys.readouterr())  # the other process (this one) goes on
        killer.join(timeout=60)
        assert killed.wait(timeout=60) == -signal.SIGKILL and killed_at
    finally:
        if killed.poll() is None:
            killed.kill()
    assert other == 0, other_console[-3000:]
    time.sleep(max(0.0, killed_at[0] + 2.5 - time.monotonic()))  # its heartbeat: > grace_period
    joined = segexp_cli(*common, "hydra.sweeper.n_trials=5", f"hydra.sweep.dir={sweep_dir}")
    joined_console = "".join(capsys.readouterr())  # a new process (this one again) joins
    assert joined == 0, joined_console[-3000:]

    trials = optuna.load_study(study_name="s", storage=storage).get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3, 4]  # n_trials in all, once each
    states = {t.number: t.state.name for t in trials}
    assert states == {0: "FAIL", 1: "COMPLETE", 2: "COMPLETE", 3: "COMPLETE", 4: "COMPLETE"}
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 5  # none run twice
    folders = {int(re.match(r"(\d+)_", p.name)[1]): p for p in sweep_dir.glob("[0-9]*_*")}
    assert sorted(folders) == [0, 1, 2, 3, 4]
    assert not (folders[0] / "summary.json").exists()  # killed: no summary, failed in the study
    for number in (1, 2, 3, 4):
        summary = json.loads((folders[number] / "summary.json").read_text())
        assert summary["status"] == "completed"
    ran = [other_console, joined_console]
    assert [int(re.search(r"this process ran (\d+)", out)[1]) for out in ran] == [3, 1]
    report = (sweep_dir / "report.md").read_text()
    assert "5 jobs: 4 completed, 0 failed, 0 interrupted, 1 without summary.json" in report


@pytest.mark.slow  # a multirun in this process, Optuna imported
def test_a_storage_that_cannot_be_opened_is_one_line_and_makes_no_folder(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path}/no/such/folder/study.db"
    code = segexp_cli("--multirun", *SEARCH, f"hydra.sweeper.storage={storage}",
                      f"hydra.sweep.dir={tmp_path}/sweep")  # fmt: skip
    assert code == 1
    only_line(capsys, f"hydra.sweeper.storage={storage} cannot be opened", "four slashes")
    assert not (tmp_path / "sweep").exists()


@pytest.mark.slow  # creates a database (Optuna's tables)
def test_a_study_of_the_same_name_with_another_search_space_is_one_line(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path}/study.db"
    study = optuna.create_study(study_name="s", storage=open_storage(storage, None))
    lr_only = {"optimizer.lr": optuna.distributions.LogUniformDistribution(1e-4, 1e-2)}
    check_search_space(study, search_space_record(lr_only, ["minimize"]), storage)
    code = segexp_cli(
        "--multirun", *SEARCH, f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=s",
        f"hydra.sweep.dir={tmp_path}/sweep",
    )  # fmt: skip
    assert code == 1
    only_line(capsys, f"Optuna study 's' in {storage} searches another space",
              "directions ['minimize'] there, ['maximize'] here", "give another "
              "hydra.sweeper.study_name")  # fmt: skip
    assert len(study.get_trials()) == 0  # nothing was run into it
