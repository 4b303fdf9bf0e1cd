"""The store's tests run against SQLite and against a real PostgreSQL server."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.store.postgres_server import PostgresServer, postgres_bin, running_postgres
from voiceagent.store.backend import SqlBackend
from voiceagent.store.sqlite import SqliteBackend

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip('psycopg is not installed (pip install -e ".[dev]")')
    with running_postgres(bindir) as server:
        yield server


BackendFactory = Callable[[], SqlBackend]


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Settings for a fresh, empty database of each kind (environment-variable form)."""
    if request.param == "sqlite":
        return {"VOICEAGENT_DATA_DIR": str(tmp_path / "data")}
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.create_database(f"test_{next(_databases)}")
    return {"VOICEAGENT_DATABASE_URL": url}


def backend_for(database: dict[str, str]) -> SqlBackend:
    url = database.get("VOICEAGENT_DATABASE_URL")
    if url:
        from voiceagent.store.postgres import PostgresBackend

        return PostgresBackend(url)
    return SqliteBackend.in_dir(database["VOICEAGENT_DATA_DIR"])
