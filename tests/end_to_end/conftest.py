"""Helpers shared by the end-to-end tests: TensorBoard tags, a PostgreSQL server."""

import functools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import free_port


def tensorboard_tags(run_dir: Path) -> dict[str, list[str]]:
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events.Tags()


def postgres_programs() -> Path | None:
    """The folder of PostgreSQL's initdb and pg_ctl: on PATH, or where Debian puts them."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: p.parts[-3])
    return versions[-1].parent if versions else None


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server of this session on 127.0.0.1 (its own data folder and port), as a
    SQLAlchemy URL; skipped where the server programs are not installed."""
    programs = postgres_programs()
    if programs is None:
        pytest.skip("PostgreSQL's server (initdb, pg_ctl) is not installed: apt-get install "
                    "postgresql (.ci/run installs it)")  # fmt: skip
    pytest.importorskip("psycopg2", reason="the driver: pip install 'segexp[postgres]'")
    # The server refuses to run as root: as root, it runs as the postgres user Debian creates.
    user = None
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the server as")
    data = Path(tempfile.mkdtemp(prefix="segexp-postgres-"))  # not under pytest's 0700 tmp
    if user is not None:
        os.chown(data, user.pw_uid, user.pw_gid)
    as_user = {"user": user.pw_name} if user is not None else {}
    port = free_port()
    run = functools.partial(subprocess.run, check=True, capture_output=True, timeout=120)
    run([programs / "initdb", "-D", data / "db", "-U", "segexp", "-A", "trust", "--no-sync"],
        **as_user)  # fmt: skip
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    run([programs / "pg_ctl", "-D", data / "db", "-o", options, "-l", data / "server.log", "-w",
         "start"], **as_user)  # fmt: skip
    try:
        yield f"postgresql://segexp@127.0.0.1:{port}/postgres"
    finally:
        run([programs / "pg_ctl", "-D", data / "db", "-m", "immediate", "-w", "stop"], **as_user)
        shutil.rmtree(data, ignore_errors=True)
