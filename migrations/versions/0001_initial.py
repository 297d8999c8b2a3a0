"""The initial store: topics, sources, documents, chunks, images, embeddings, runs.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_table(
        "topics",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False, unique=True),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("content_hash", sa.String(), nullable=False, unique=True),
        sa.Column("title", sa.Text()),
        sa.Column("author", sa.Text()),
        sa.Column("published", sa.String()),
        sa.Column("language", sa.String()),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "sources",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("canonical_url", sa.String(), nullable=False, unique=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("document_id", sa.Integer(), sa.ForeignKey("documents.id", ondelete="SET NULL")),
        sa.Column("raw_hash", sa.String()),
        sa.Column("fetched_at", sa.Float()),
        sa.Column("http_status", sa.Integer()),
        sa.Column("content_type", sa.String()),
        sa.Column("etag", sa.String()),
        sa.Column("last_modified", sa.String()),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_sources_document_id", "sources", ["document_id"])
    op.create_table(
        "topic_documents",
        sa.Column("topic_id", sa.Integer(), sa.ForeignKey("topics.id", ondelete="CASCADE"), nullable=False),
        sa.Column(
            "document_id", sa.Integer(), sa.ForeignKey("documents.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("topic_id", "document_id"),
    )
    op.create_index("ix_topic_documents_document_id", "topic_documents", ["document_id"])
    op.create_table(
        "chunks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "document_id", sa.Integer(), sa.ForeignKey("documents.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("start_char", sa.Integer(), nullable=False),
        sa.Column("end_char", sa.Integer(), nullable=False),
        sa.Column("n_tokens", sa.Integer(), nullable=False),
        sa.UniqueConstraint("document_id", "position", name="uq_chunks_document_position"),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("content_hash", sa.String(), nullable=False, unique=True),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(), nullable=False),
        sa.Column("byte_size", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("caption", sa.Text()),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "document_images",
        sa.Column(
            "document_id", sa.Integer(), sa.ForeignKey("documents.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
        sa.Column("chunk_id", sa.Integer(), sa.ForeignKey("chunks.id", ondelete="SET NULL")),
        sa.Column("src_url", sa.Text(), nullable=False),
        sa.Column("alt", sa.Text()),
        sa.Column("caption", sa.Text()),
        sa.Column("context", sa.Text()),
        sa.PrimaryKeyConstraint("document_id", "image_id"),
    )
    op.create_index("ix_document_images_image_id", "document_images", ["image_id"])
    op.create_table(
        "embeddings",
        sa.Column("space", sa.String(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("space", "item_id"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float()),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("summary", sa.Text()),
    )
    op.create_table(
        "failures",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("input", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_failures_run_id", "failures", ["run_id"])


def downgrade() -> None:
    for table in (
        "failures",
        "runs",
        "embeddings",
        "document_images",
        "images",
        "chunks",
        "topic_documents",
        "sources",
        "documents",
        "topics",
        "meta",
    ):
        op.drop_table(table)
