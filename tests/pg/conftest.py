"""A real PostgreSQL server for the session (tests/pg/server.py), or a skip that says how to get one."""

from __future__ import annotations

import pytest

from tests.pg.server import INSTALL, binaries, postgres_server


@pytest.fixture(scope="session")
def postgres_url():
    if binaries() is None:
        pytest.skip(f"PostgreSQL is not installed: {INSTALL}")
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install 'psycopg[binary]'")
    with postgres_server() as url:
        yield url
