"""What differs between the store's two databases, SQLite and PostgreSQL, in one place.

The schema, migrations and most queries are SQLAlchemy Core and run on both. What does not:
the upsert (each dialect has its own ``insert`` with ``on_conflict_*``) and the hot paths that
read many rows through the driver directly (a Row object per row dominated at 10⁵ rows),
written with ``?`` placeholders here and given ``%s`` for psycopg.
"""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import Connection, Table


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def insert(conn: Connection, table: Table):  # noqa: ANN201 - the dialect's Insert
    """``INSERT`` with the dialect's ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    if is_postgres(conn):
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(table)


def raw(conn: Connection, sql: str, params: Sequence[Any] = ()):  # noqa: ANN201 - a DB-API cursor
    """Run ``sql`` (``?`` placeholders) on the driver's own connection, in ``conn``'s transaction."""
    driver = conn.connection.driver_connection
    if is_postgres(conn):
        return driver.execute(sql.replace("%", "%%").replace("?", "%s"), tuple(params))  # a literal % is %% there
    return driver.execute(sql, tuple(params))


class QmarkConnection:
    """A driver connection that takes ``?`` placeholders on either database (sqlite3's interface)."""

    def __init__(self, conn: Connection):
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()):  # noqa: ANN201 - a DB-API cursor
        return raw(self._conn, sql, params)
