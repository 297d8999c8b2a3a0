"""Opening the SQLite database: WAL mode, foreign keys, and schema migrations.

SQLAlchemy (about 0.4 s to import on a 2-core machine) and Alembic load only inside the
functions that use them. ``schema_revision`` and ``connect_at_head`` use the standard
library's sqlite3 alone, so a reader of a store already at the newest schema (``engine
status``) can open it without either; anything else (no database yet, an older or a newer
schema) is for ``Store``, which creates, migrates or refuses it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import SchemaTooNewError, StoreError

if TYPE_CHECKING:
    from sqlalchemy import Engine

# Oldest first. The store refuses to open a revision not listed here (a newer engine wrote it).
# Defined here, beside the check, so that checking needs no SQLAlchemy; engine.store.schema
# (the tables, which do) has the same names.
KNOWN_REVISIONS: tuple[str, ...] = ("0001", "0002", "0003", "0004", "0005")
HEAD_REVISION = KNOWN_REVISIONS[-1]

# `migrations/` sits beside the `engine` package, in a checkout and in site-packages alike.
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"

# Every connection, SQLAlchemy's or plain sqlite3's, runs these first.
PRAGMAS = (
    # WAL lets readers (engine ask) run while one writer (engine index) commits.
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
    # NORMAL is durable in WAL mode against process crashes (kill -9); only an OS
    # crash or power loss may roll back the last commits, never corrupt.
    "PRAGMA synchronous=NORMAL",
)
_VERSION_TABLE = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
_VERSION = "SELECT version_num FROM alembic_version"


def connect(db_path: Path | str) -> Engine:
    """An engine on ``db_path`` with WAL, foreign keys and a generous busy timeout; or, given a
    database URL (``postgresql+psycopg://user@host/db``), an engine on that server."""
    from sqlalchemy import create_engine, event

    if is_url(db_path):
        return create_engine(str(db_path), pool_pre_ping=True)
    engine = create_engine(f"sqlite:///{db_path}", future=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001 - DB-API connection
        _apply_pragmas(dbapi_conn)

    return engine


def is_url(target: Path | str) -> bool:
    """Whether ``target`` names a database server (a URL) rather than a SQLite file."""
    return isinstance(target, str) and "://" in target


def redacted(target: Path | str) -> str:
    """``target`` for messages: a URL without its password."""
    if not is_url(target):
        return str(target)
    from sqlalchemy.engine import make_url

    return make_url(str(target)).render_as_string(hide_password=True)


def _apply_pragmas(dbapi_conn) -> None:  # noqa: ANN001 - a sqlite3 connection
    cursor = dbapi_conn.cursor()
    for pragma in PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def revision_of(dbapi_conn) -> str | None:  # noqa: ANN001 - a sqlite3 connection
    """The store's schema revision; None before the first migration made the version table."""
    cursor = dbapi_conn.cursor()
    try:
        if cursor.execute(_VERSION_TABLE).fetchone() is None:
            return None
        row = cursor.execute(_VERSION).fetchone()
        return row[0] if row else None
    finally:
        cursor.close()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            has_table = conn.exec_driver_sql(_VERSION_TABLE).first() is not None
        else:
            from sqlalchemy import inspect

            has_table = inspect(conn).has_table("alembic_version")
        if not has_table:
            return None
        return conn.exec_driver_sql(_VERSION).scalar()


def schema_revision(db_path: Path) -> str | None:
    """The schema revision of the database at ``db_path``, read with sqlite3 alone; None when
    there is no such file or no schema in it yet.

    Raises:
        sqlite3.Error: the file is not a readable SQLite database.
    """
    if not Path(db_path).is_file():
        return None
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        return revision_of(conn)
    finally:
        conn.close()


def connect_at_head(db_path: Path) -> sqlite3.Connection | None:
    """A plain sqlite3 connection to ``db_path``, set up as ``connect`` sets up SQLAlchemy's,
    when the database exists and its schema is the newest; else None, and nothing is created.

    None means: open it as a ``Store``, which creates, migrates or refuses it (an unreadable
    file included: ``Store`` reports it as it always has). The caller closes the connection.
    """
    if not Path(db_path).is_file():
        return None
    conn = None
    try:
        conn = sqlite3.connect(db_path, timeout=30)
        if revision_of(conn) == HEAD_REVISION:
            _apply_pragmas(conn)
            return conn
    except sqlite3.Error:
        pass
    if conn is not None:
        conn.close()
    return None


def ensure_schema(engine: Engine, db_path: Path) -> None:
    """Upgrade the store to the newest schema this engine knows; refuse a newer one."""
    revision = current_revision(engine)
    if revision == HEAD_REVISION:
        return  # the common case: no Alembic import, so opening stays fast
    if revision is not None and revision not in KNOWN_REVISIONS:
        raise SchemaTooNewError(
            f"the store at {db_path} has schema revision {revision}, newer than this engine "
            f"knows (newest: {HEAD_REVISION}); upgrade the engine (pip install -U engine) "
            "or point --store at another folder"
        )
    upgrade(engine)


def upgrade(engine: Engine, target: str = "head") -> None:
    """Run the Alembic migrations up to ``target`` on ``engine``'s database."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    if not (MIGRATIONS_DIR / "env.py").exists():
        raise StoreError(f"the migrations folder {MIGRATIONS_DIR} is missing; reinstall the engine")
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        # pysqlite opens no transaction before DDL, so each CREATE would commit alone and
        # a kill mid-migration would leave tables without a version row (unopenable store).
        # One explicit transaction makes the migration all or nothing.
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # PostgreSQL's DDL is transactional already
        config.attributes["connection"] = conn
        command.upgrade(config, target)
