"""Keyword search over the passages, on either database: SQLite's FTS5 or PostgreSQL's tsvector.

Both sides give the same three things, so BM25-style ranking and hybrid fusion do not care
which database holds the store: how many passages match a word (counting stops at a cap),
and the best passages for any of some words, best first with a score where higher is better.
SQLite ranks with FTS5's bm25() (porter stemming); PostgreSQL with ts_rank_cd over a
generated ``to_tsvector('english', text)`` column with a GIN index (migration 0002).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from engine.store.dialect import is_postgres

_SQLITE_COUNT = text("SELECT count(*) FROM (SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH :w LIMIT :cap)")
_PG_COUNT = text("SELECT count(*) FROM (SELECT 1 FROM chunks WHERE tsv @@ plainto_tsquery('english', :w) LIMIT :cap) s")
_SQLITE_RANK = text("SELECT rowid, -bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH :q ORDER BY rank LIMIT :k")
_PG_RANK = text(
    "SELECT id, ts_rank_cd(tsv, q) AS score FROM chunks, websearch_to_tsquery('english', :q) q "
    "WHERE tsv @@ q ORDER BY score DESC, id LIMIT :k"
)


def passage_count(conn: Connection) -> int:
    """About how many passages there are (the largest id: no scan)."""
    return conn.execute(text("SELECT max(id) FROM chunks")).scalar() or 0


def matching(conn: Connection, word: str, cap: int) -> int:
    """Passages containing ``word``, counted up to ``cap``."""
    if is_postgres(conn):
        return conn.execute(_PG_COUNT, {"w": word, "cap": cap}).scalar()
    return conn.execute(_SQLITE_COUNT, {"w": f'"{word}"', "cap": cap}).scalar()


def best_passages(conn: Connection, words: list[str], k: int) -> list[tuple[int, float]]:
    """The ``k`` passages that best match any of ``words``: (chunk id, score), higher is better."""
    if not words:
        return []
    if is_postgres(conn):
        rows = conn.execute(_PG_RANK, {"q": " OR ".join(words), "k": k}).all()
    else:
        rows = conn.execute(_SQLITE_RANK, {"q": " OR ".join(f'"{w}"' for w in words), "k": k}).all()
    return [(int(chunk_id), float(score)) for chunk_id, score in rows]
