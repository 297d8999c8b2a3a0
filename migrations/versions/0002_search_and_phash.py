"""Full-text search over chunks (SQLite FTS5) and perceptual hashes of images.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

``chunks_fts`` is an external-content FTS5 index of ``chunks.text`` kept in step by
triggers, so every writer (and every cascade delete) updates it in the same
transaction. ``images.phash`` (64-bit pHash, hex) finds near-duplicate images.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# porter: "roasting" finds "roasted"; unicode61 with diacritics removed: "cafe" finds "café".
FTS_SETUP = [
    "CREATE VIRTUAL TABLE chunks_fts USING fts5("
    "text, content='chunks', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN "
    "INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN "
    "INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER chunks_fts_update AFTER UPDATE OF text ON chunks BEGIN "
    "INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END",
    # Index what an older store already holds.
    "INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')",
]


# PostgreSQL (issue 13): its own full-text search, a generated tsvector with a GIN index.
PG_FTS_SETUP = [
    "ALTER TABLE chunks ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED",
    "CREATE INDEX ix_chunks_tsv ON chunks USING GIN (tsv)",
]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in PG_FTS_SETUP if postgres else FTS_SETUP:
        op.execute(statement)
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("phash", sa.String()))
    op.create_index("ix_images_phash", "images", ["phash"])


def downgrade() -> None:
    op.drop_index("ix_images_phash", table_name="images")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("phash")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_chunks_tsv")
        op.execute("ALTER TABLE chunks DROP COLUMN IF EXISTS tsv")
        return
    for name in ("chunks_fts_insert", "chunks_fts_delete", "chunks_fts_update"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE IF EXISTS chunks_fts")
