"""The crawl frontier: per-URL fetch state and per-topic crawl rounds.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

``crawl_urls`` holds every URL discovery proposed (pages, and images with the page they
belong to) with the state of its last fetch: status, HTTP status, validators for
conditional GETs, the last error. ``crawl_url_topics`` says which topics proposed it.
``crawl_topics`` records each topic's crawl rounds: a round that started and did not
finish is resumed by the next run, skipping the URLs it already settled.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crawl_urls",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("canonical_url", sa.String(), nullable=False, unique=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("page_url", sa.Text()),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("http_status", sa.Integer()),
        sa.Column("etag", sa.String()),
        sa.Column("last_modified", sa.String()),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("discovered_at", sa.Float(), nullable=False),
        sa.Column("checked_at", sa.Float()),
        sa.Column("fetched_at", sa.Float()),
    )
    op.create_index("ix_crawl_urls_status", "crawl_urls", ["status"])
    op.create_table(
        "crawl_url_topics",
        sa.Column("url_id", sa.Integer(), sa.ForeignKey("crawl_urls.id", ondelete="CASCADE"), nullable=False),
        sa.Column("topic_id", sa.Integer(), sa.ForeignKey("topics.id", ondelete="CASCADE"), nullable=False),
        sa.Column("provider", sa.String()),
        sa.Column("rank", sa.Integer()),
        sa.Column("discovered_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("url_id", "topic_id"),
    )
    op.create_index("ix_crawl_url_topics_topic_id", "crawl_url_topics", ["topic_id"])
    op.create_table(
        "crawl_topics",
        sa.Column("topic_id", sa.Integer(), sa.ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("round_started_at", sa.Float()),
        sa.Column("last_crawl_at", sa.Float()),
        sa.Column("next_crawl_at", sa.Float()),
        sa.Column("discovery_errors", sa.Text()),
    )


def downgrade() -> None:
    op.drop_table("crawl_topics")
    op.drop_index("ix_crawl_url_topics_topic_id", table_name="crawl_url_topics")
    op.drop_table("crawl_url_topics")
    op.drop_index("ix_crawl_urls_status", table_name="crawl_urls")
    op.drop_table("crawl_urls")
