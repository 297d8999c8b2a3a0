"""The SQLite schema: the source of truth for everything the engine knows.

Tables are created and changed only by the Alembic migrations in ``migrations/``;
these definitions are what the code queries with, and a test checks that the
migrated database and these definitions agree.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# Re-exported from the modules that define them without SQLAlchemy: the schema revisions
# (oldest first; a store at one not listed was written by a newer engine) and the vector spaces.
from engine.store.database import HEAD_REVISION, KNOWN_REVISIONS  # noqa: F401
from engine.store.spaces import CLIP_IMAGE_SPACE, CLIP_TEXT_SPACE, SPACE_TABLE, TEXT_SPACE  # noqa: F401

# Made by raw SQL in migrations (SQLAlchemy has no FTS5 type): the FTS5 index of
# chunks.text and its shadow tables. Schema comparisons leave these names alone.
FTS_TABLE = "chunks_fts"


def is_fts_name(name: str | None) -> bool:
    return bool(name) and name.startswith(FTS_TABLE)


metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String, primary_key=True),
    Column("value", Text, nullable=False),
)

topics = Table(
    "topics",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String, nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

documents = Table(
    "documents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("content_hash", String, nullable=False, unique=True),
    Column("title", Text),
    Column("author", Text),
    Column("published", String),
    Column("language", String),
    Column("text", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

sources = Table(
    "sources",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("canonical_url", String, nullable=False, unique=True),
    Column("url", Text, nullable=False),
    Column("origin", Text, nullable=False),
    Column("document_id", Integer, ForeignKey("documents.id", ondelete="SET NULL")),
    # Hash of the raw bytes read, so an unchanged input is skipped before extraction.
    Column("raw_hash", String),
    Column("fetched_at", Float),
    Column("http_status", Integer),
    Column("content_type", String),
    Column("etag", String),
    Column("last_modified", String),
    Column("updated_at", Float, nullable=False),
    Index("ix_sources_document_id", "document_id"),
)

topic_documents = Table(
    "topic_documents",
    metadata,
    Column("topic_id", Integer, ForeignKey("topics.id", ondelete="CASCADE"), nullable=False),
    Column("document_id", Integer, ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
    # Best chunk's cosine similarity to the topic; the link counts when it reaches
    # index.topic_min_similarity, so changing that setting needs no re-embedding.
    Column("score", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("topic_id", "document_id"),
    Index("ix_topic_documents_document_id", "document_id"),
)

chunks = Table(
    "chunks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("document_id", Integer, ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("start_char", Integer, nullable=False),
    Column("end_char", Integer, nullable=False),
    Column("n_tokens", Integer, nullable=False),
    UniqueConstraint("document_id", "position", name="uq_chunks_document_position"),
)

images = Table(
    "images",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("content_hash", String, nullable=False, unique=True),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("format", String, nullable=False),
    Column("byte_size", Integer, nullable=False),
    # Relative to the store's root.
    Column("path", Text, nullable=False),
    # A generated caption (captioning model), distinct from the page's own caption.
    Column("caption", Text),
    Column("created_at", Float, nullable=False),
    # 64-bit perceptual hash (imagehash.phash, hex): near-duplicates differ in few bits.
    Column("phash", String),
    Index("ix_images_phash", "phash"),
)

document_images = Table(
    "document_images",
    metadata,
    Column("document_id", Integer, ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
    Column("image_id", Integer, ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
    Column("chunk_id", Integer, ForeignKey("chunks.id", ondelete="SET NULL")),
    Column("src_url", Text, nullable=False),
    Column("alt", Text),
    Column("caption", Text),
    # The text nearest the image in the page (the paragraphs before and after it).
    Column("context", Text),
    PrimaryKeyConstraint("document_id", "image_id"),
    Index("ix_document_images_image_id", "image_id"),
)

embeddings = Table(
    "embeddings",
    metadata,
    Column("space", String, nullable=False),
    Column("item_id", Integer, nullable=False),
    Column("vector", LargeBinary, nullable=False),
    PrimaryKeyConstraint("space", "item_id"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    # running | done | interrupted | failed (a run left "running" was killed)
    Column("status", String, nullable=False),
    Column("summary", Text),
)

failures = Table(
    "failures",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String, nullable=False),  # page | image | archive
    Column("input", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_failures_run_id", "run_id"),
)

# -- the crawl frontier (migration 0003) ----------------------------------------------------

crawl_urls = Table(
    "crawl_urls",
    metadata,
    Column("id", Integer, primary_key=True),
    # courlan-normalised, the same key as sources.canonical_url for pages.
    Column("canonical_url", String, nullable=False, unique=True),
    Column("url", Text, nullable=False),
    Column("kind", String, nullable=False),  # page | image
    Column("page_url", Text),  # for an image: the page it is stored with
    # queued | fetched | not_modified | failed | gone | skipped (see indexer/frontier.py)
    Column("status", String, nullable=False),
    Column("http_status", Integer),
    # Validators of the last 200 answer, sent back as If-None-Match / If-Modified-Since.
    Column("etag", String),
    Column("last_modified", String),
    Column("attempts", Integer, nullable=False),  # failures in a row
    Column("last_error", Text),
    Column("discovered_at", Float, nullable=False),
    Column("checked_at", Float),  # when the crawl last settled it, whatever the outcome
    Column("fetched_at", Float),  # when a body last came back (200)
    Index("ix_crawl_urls_status", "status"),
)

crawl_url_topics = Table(
    "crawl_url_topics",
    metadata,
    Column("url_id", Integer, ForeignKey("crawl_urls.id", ondelete="CASCADE"), nullable=False),
    Column("topic_id", Integer, ForeignKey("topics.id", ondelete="CASCADE"), nullable=False),
    Column("provider", String),
    Column("rank", Integer),
    Column("discovered_at", Float, nullable=False),
    PrimaryKeyConstraint("url_id", "topic_id"),
    Index("ix_crawl_url_topics_topic_id", "topic_id"),
)

crawl_topics = Table(
    "crawl_topics",
    metadata,
    Column("topic_id", Integer, ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True),
    # A round (discovery, then every URL of the topic settled) is unfinished while
    # last_crawl_at < round_started_at; the next run resumes it.
    Column("round_started_at", Float),
    Column("last_crawl_at", Float),
    Column("next_crawl_at", Float),  # set by --watch: when the next round is due
    Column("discovery_errors", Text),  # JSON {provider: reason} of the round's discovery
)

# -- which vectors each version changed (migration 0004) --------------------------------------

vector_changes = Table(
    "vector_changes",
    metadata,
    Column("space", String, nullable=False),
    Column("version", Integer, nullable=False),  # the space's vectors_version the change made
    Column("item_id", Integer, nullable=False),
    Index("ix_vector_changes_space_version", "space", "version"),
)

# -- asks remembered, for `engine ask --new` (migration 0005) ----------------------------------

asks = Table(
    "asks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("question", Text, nullable=False),
    Column("question_key", Text, nullable=False),  # engine.ask.memory.question_key
    Column("asked_at", Float, nullable=False),
    Column("new_only", Boolean, nullable=False),
    Column("cited", Text, nullable=False),  # JSON list of the document ids the answer cited
    Index("ix_asks_question_key_asked_at", "question_key", "asked_at"),
)
