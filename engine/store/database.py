"""Opening the SQLite database: WAL mode, foreign keys, and schema migrations."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text

from engine.errors import SchemaTooNewError, StoreError
from engine.store.schema import HEAD_REVISION, KNOWN_REVISIONS

# `migrations/` sits beside the `engine` package, in a checkout and in site-packages alike.
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def connect(db_path: Path) -> Engine:
    """An engine on ``db_path`` with WAL, foreign keys and a generous busy timeout."""
    engine = create_engine(f"sqlite:///{db_path}", future=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001 - DB-API connection
        cursor = dbapi_conn.cursor()
        # WAL lets readers (engine ask) run while one writer (engine index) commits.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # NORMAL is durable in WAL mode against process crashes (kill -9); only an OS
        # crash or power loss may roll back the last commits, never corrupt.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


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
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        config.attributes["connection"] = conn
        command.upgrade(config, target)
