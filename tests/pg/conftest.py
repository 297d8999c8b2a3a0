"""A real PostgreSQL server for the session (tests/pg/server.py), or a skip that says how to get one;
a fresh database on it per test; and ``backend``, which runs a store test on SQLite and on PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.pg.server import INSTALL, binaries, fresh_database, postgres_server


@pytest.fixture(scope="session")
def postgres_url():
    if binaries() is None:
        pytest.skip(f"PostgreSQL is not installed: {INSTALL}")
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install 'psycopg[binary]'")
    with postgres_server() as url:
        yield url


@pytest.fixture()
def postgres_database(postgres_url):
    """The URL of a new, empty database on the session's server, dropped after the test."""
    with fresh_database(postgres_url) as url:
        yield url


@dataclass
class Backend:
    """Where a test's store keeps its rows: ``sqlite`` (the folder's engine.db) or ``postgresql`` (a fresh database)."""

    name: str
    url: str | None  # the database URL; None on SQLite
    folder: Path

    def store(self, machine: str = "a", **options):  # noqa: ANN201 - a Store
        """A new Store object on the test's database.

        On SQLite the database is the folder's file, so every Store shares one folder. On PostgreSQL
        each ``machine`` gets a folder of its own (its own FAISS files and lock file) and only the
        database is shared, as between the machines of a deployment.
        """
        from engine.store.store import Store

        root = self.folder if self.url is None else self.folder / machine
        return Store(root, database_url=self.url, **options)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path) -> Backend:
    """Runs the test once per database; the PostgreSQL run skips (saying how to install it) when there is none."""
    if request.param == "sqlite":
        return Backend("sqlite", None, tmp_path / "store")
    return Backend("postgresql", request.getfixturevalue("postgres_database"), tmp_path / "store")
