"""An Optuna storage URL (``hydra.sweeper.storage``): shown without its password, opened with
Optuna's heartbeat, or refused with one line naming what is wrong.

SQLite (``sqlite:////abs/path/study.db``) serves processes on one machine; a database server
(``postgresql://user:password@host/db``, driver: ``pip install 'segexp[postgres]'``) serves
processes on several machines.
"""

import re
import time
import warnings
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from segexp.errors import SegexpError

if TYPE_CHECKING:
    from optuna.storages import RDBStorage

KEY = "hydra.sweeper.storage"
CREATE_ATTEMPTS = 5  # opening a database that other processes are creating at the same moment


def shown(url: Any) -> str:
    """The URL as it may be printed and written into files: any password replaced by ***."""
    return re.sub(r"(://[^/:@]+):[^@/]*@", r"\1:***@", str(url))


def study_label(config: DictConfig) -> str | None:
    """What the processes searching one study share (a sweep folder, sweeps/callback.py): None
    when this sweep is not a study in a storage."""
    storage = OmegaConf.select(config, "hydra.sweeper.storage")
    if not storage:
        return None
    name = OmegaConf.select(config, "hydra.sweeper.study_name")
    return f"Optuna study '{name}' in {shown(storage)}"


def _fix(url: str, err: BaseException) -> str:
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    if isinstance(err, ImportError) or "No module named" in str(err):
        if scheme == "postgresql":
            return "install its driver: pip install 'segexp[postgres]'"
        return f"install the Python driver SQLAlchemy uses for {scheme}"
    if type(err).__name__ == "NoSuchModuleError":
        return (
            f"SQLAlchemy knows no database '{scheme}': give sqlite:////abs/path/study.db or "
            "postgresql://user:pw@host/db"
        )
    if scheme == "sqlite":
        return (
            "give a file in a folder that exists and can be written, as an absolute path: "
            "sqlite:////abs/path/study.db (four slashes)"
        )
    if "://" not in url:
        return "give a URL, e.g. sqlite:////abs/path/study.db or postgresql://user:pw@host/db"
    return "check that the server runs and can be reached, and the user, password and database"


def _reason(err: BaseException) -> str:
    """The first line of a driver's message, without SQLAlchemy's trailer (a web link)."""
    text = str(getattr(err, "orig", None) or err).strip().splitlines()
    return re.sub(r"\s*\(Background on this error at: .*\)$", "", text[0] if text else "")


def open_storage(
    url: str, heartbeat_interval: int | None, grace_period: int | None = None
) -> "RDBStorage":
    """Optuna's RDB storage for ``url``. ``heartbeat_interval`` (seconds): the trials in flight
    are marked alive that often, and a trial not marked for ``grace_period`` (default: twice the
    interval) is failed by the next process that asks for a trial."""
    try:
        from optuna.exceptions import ExperimentalWarning
        from optuna.storages import RDBStorage
    except ImportError:
        raise SegexpError(
            f"{KEY} needs Optuna: pip install 'segexp[sweep]' (hparams_search=optuna)"
        ) from None
    for attempt in range(CREATE_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)  # the heartbeat is, in 2.10
                return RDBStorage(
                    str(url), heartbeat_interval=heartbeat_interval, grace_period=grace_period
                )
        except Exception as err:  # SQLAlchemy's, the driver's or Optuna's own: all say why
            if attempt + 1 < CREATE_ATTEMPTS and _created_meanwhile(err):
                time.sleep(0.2 * (attempt + 1))
                continue
            raise SegexpError(
                f"{KEY}={shown(url)} cannot be opened ({type(err).__name__}: "
                f"{shown(_reason(err))}): {_fix(str(url), err)}"
            ) from None
    raise AssertionError("unreachable")


def _created_meanwhile(err: BaseException) -> bool:
    """Another process creating the same new database at this moment: Optuna creates its tables
    and stamps their version when a storage is first opened, and two processes started together
    collide there (the second sees the first's rows, or a locked SQLite file). Opening again
    finds the finished database."""
    text = str(err).lower()
    return type(err).__name__ in ("IntegrityError", "OperationalError", "ProgrammingError") and (
        "alembic_version" in text or "already exists" in text or "database is locked" in text
    )


def check_storage(config: DictConfig) -> None:
    """At the start of a multirun: the study's storage opens (one line if not)."""
    storage = OmegaConf.select(config, "hydra.sweeper.storage")
    if storage:
        open_storage(str(storage), heartbeat_interval=None)
