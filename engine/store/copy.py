"""Copying a store's database to another one (SQLite ⇄ PostgreSQL) without losing a row.

The target is migrated to the newest schema first and must hold no rows. Tables are copied in
foreign-key order, in batches, inside one transaction on the target, then every table's row
count is compared; on PostgreSQL the id sequences are moved past the copied ids. Full-text
indexes are the target's own (FTS5 triggers or the generated tsvector) and fill as rows arrive.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, insert, select, text

from engine.errors import StoreError
from engine.store import database
from engine.store.schema import metadata

BATCH = 2_000


@dataclass(frozen=True)
class CopyReport:
    target: str
    rows: dict[str, int]  # per table, as copied and counted on both sides


def copy_database(source: Engine, target_url: str) -> CopyReport:
    """Copy every row of ``source``'s store into the database at ``target_url`` (a URL or a SQLite path).

    Raises:
        StoreError: the target already holds rows, or a table's count differs after the copy.
    """
    target = database.connect(target_url)
    try:
        database.ensure_schema(target, target_url)
        with target.connect() as conn:
            filled = [t.name for t in metadata.sorted_tables if conn.execute(select(func.count()).select_from(t)).scalar()]
        if filled:
            raise StoreError(f"the target database {database.redacted(target_url)} already holds rows ({', '.join(filled)}); copy into an empty one")
        rows = {}
        with source.connect() as reading, target.begin() as writing:
            for table in metadata.sorted_tables:
                copied = 0
                result = reading.execution_options(stream_results=True).execute(select(table))
                while batch := result.fetchmany(BATCH):
                    writing.execute(insert(table), [dict(row._mapping) for row in batch])
                    copied += len(batch)
                rows[table.name] = copied
            if writing.dialect.name == "postgresql":
                _move_sequences_past_copied_ids(writing)
        with target.connect() as conn:
            for table in metadata.sorted_tables:
                counted = conn.execute(select(func.count()).select_from(table)).scalar()
                if counted != rows[table.name]:
                    raise StoreError(f"{table.name}: {rows[table.name]} rows copied but {counted} in the target")
        return CopyReport(database.redacted(target_url), rows)
    finally:
        target.dispose()


def _move_sequences_past_copied_ids(conn) -> None:  # noqa: ANN001 - a PostgreSQL Connection
    """Rows were inserted with their ids: the next id a sequence hands out must follow them."""
    for table in metadata.sorted_tables:
        if list(table.primary_key.columns.keys()) == ["id"]:
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                    f"COALESCE((SELECT max(id) FROM {table.name}), 0) + 1, false)"
                )
            )
