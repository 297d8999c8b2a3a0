"""Asks remembered: the question, when, and the documents cited, for `engine ask --new`.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

`engine ask "…" --new` answers from the documents added or changed since the same question
was last asked; ``question_key`` (the question case-folded, spaces collapsed) finds that ask.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "asks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("question_key", sa.Text(), nullable=False),
        sa.Column("asked_at", sa.Float(), nullable=False),
        sa.Column("new_only", sa.Boolean(), nullable=False),
        sa.Column("cited", sa.Text(), nullable=False),  # JSON list of document ids
    )
    op.create_index("ix_asks_question_key_asked_at", "asks", ["question_key", "asked_at"])


def downgrade() -> None:
    op.drop_index("ix_asks_question_key_asked_at", table_name="asks")
    op.drop_table("asks")
