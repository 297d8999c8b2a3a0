"""Alembic environment: migrates the connection the engine hands over.

The engine runs migrations in-process (``engine.store.database.upgrade``), passing
its open connection in ``config.attributes["connection"]``; the ``alembic`` command
line works too, given ``-x db=/path/to/engine.db``.
"""

from alembic import context
from sqlalchemy import create_engine

from engine.store.schema import is_fts_name, metadata


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    db = context.get_x_argument(as_dictionary=True).get("db")
    if not db:
        raise SystemExit("pass the store's database: alembic -x db=/path/to/engine.db upgrade head")
    with create_engine(f"sqlite:///{db}").begin() as conn:
        _migrate(conn)


def _migrate(connection) -> None:
    # render_as_batch: SQLite alters tables by copying them; Alembic's batch mode does that.
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        include_name=lambda name, type_, parent: not (type_ == "table" and is_fts_name(name)),
    )
    with context.begin_transaction():
        context.run_migrations()


run()
