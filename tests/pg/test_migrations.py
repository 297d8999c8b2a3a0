"""The same Alembic migrations build the same schema on PostgreSQL (its full-text column aside)."""

from __future__ import annotations

import sqlalchemy as sa

from engine.store import database
from engine.store.schema import HEAD_REVISION, metadata


def test_the_migrations_build_the_schema_on_postgresql_and_undo_it(postgres_url):
    engine = sa.create_engine(postgres_url)
    try:
        database.upgrade(engine)
        assert database.current_revision(engine) == HEAD_REVISION
        inspector = sa.inspect(engine)
        for table in metadata.sorted_tables:
            columns = {c["name"] for c in inspector.get_columns(table.name)}
            expected = {c.name for c in table.columns} | ({"tsv"} if table.name == "chunks" else set())
            assert columns == expected, table.name
        assert "ix_chunks_tsv" in {i["name"] for i in inspector.get_indexes("chunks")}
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(database.MIGRATIONS_DIR))
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
