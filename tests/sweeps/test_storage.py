"""Opening a study's storage: one line naming the key, the problem and the fix; no password."""

import pytest
from omegaconf import OmegaConf

from segexp.errors import SegexpError
from segexp.sweeps.storage import open_storage, shown, study_label

pytest.importorskip("optuna")


@pytest.mark.parametrize(
    ("url", "problem", "fix"),
    [
        ("sqlite:////no/such/folder/s.db", "unable to open database file", "a folder that exists"),
        ("not a url", "Could not parse", "give a URL, e.g. sqlite:////"),
        ("foo://host/db", "Can't load plugin", "SQLAlchemy knows no database 'foo'"),
        ("postgresql://me:secret@127.0.0.1:1/db", "Connection refused", "the server runs"),
    ],
)
def test_a_storage_that_cannot_be_opened_is_one_line_naming_the_key_and_the_fix(url, problem, fix):
    with pytest.raises(SegexpError) as err:
        open_storage(url, heartbeat_interval=60)
    line = str(err.value)
    assert line.startswith(f"hydra.sweeper.storage={shown(url)} cannot be opened (")
    assert problem in line and fix in line and "\n" not in line
    assert "secret" not in line


@pytest.mark.slow  # creates a database (Optuna's tables)
def test_a_storage_opens_with_the_heartbeat_and_is_shown_without_its_password(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/s.db", heartbeat_interval=3, grace_period=7)
    assert storage.is_heartbeat_enabled() and storage.get_heartbeat_interval() == 3
    assert storage.grace_period == 7
    assert shown("postgresql://me:pw@db:5432/s") == "postgresql://me:***@db:5432/s"
    assert shown("sqlite:////a/b.db") == "sqlite:////a/b.db"


def test_the_processes_of_one_study_share_a_label_a_study_of_one_process_has_none():
    sweeper = {"storage": "postgresql://me:pw@db/s", "study_name": "lr"}
    label = study_label(OmegaConf.create({"hydra": {"sweeper": sweeper}}))
    assert label == "Optuna study 'lr' in postgresql://me:***@db/s"
    alone = {"hydra": {"sweeper": {"storage": None, "study_name": "lr"}}}
    assert study_label(OmegaConf.create(alone)) is None
    assert study_label(OmegaConf.create({"hydra": {"sweeper": {"params": {}}}})) is None


@pytest.mark.slow  # creates a database (Optuna's tables)
def test_a_database_that_another_process_is_creating_is_opened_again(tmp_path, monkeypatch):
    """Two processes started together both create Optuna's tables in a new database: the
    second trips over the first's rows, then finds the finished database."""
    from optuna.storages import RDBStorage

    class IntegrityError(Exception):  # as SQLAlchemy names it
        pass

    tries, race = [], [True]

    def racing(url, **kwargs):
        tries.append(url)
        if race.pop() if race else False:
            raise IntegrityError("UNIQUE constraint failed: alembic_version.version_num")
        return RDBStorage(url, **kwargs)

    monkeypatch.setattr("optuna.storages.RDBStorage", racing)
    open_storage(f"sqlite:///{tmp_path}/s.db", heartbeat_interval=60)
    assert len(tries) == 2
    tries.clear()
    with pytest.raises(SegexpError, match="unable to open database file"):  # not a race: once
        open_storage("sqlite:////no/such/folder/s.db", heartbeat_interval=60)
    assert len(tries) == 1
