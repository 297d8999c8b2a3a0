"""The example corpus indexed into PostgreSQL answers as it does from SQLite."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from engine.config import ClipConfig, Config, StoreConfig
from engine.kb import KnowledgeBase

TOPICS = ["coffee", "domestic cats", "ancient coins", "space exploration"]
QUESTIONS = ["how is coffee roasted", "what was the roman denarius", "why do cats purr", "what did the hubble deep field show"]


def _answers(config: Config, examples_dir, text_encoder) -> tuple[dict, list]:
    with KnowledgeBase(config, text_encoder=text_encoder) as kb:
        report = kb.index(TOPICS, [examples_dir / "pages"])
        firsts = [(r.sources[0].url if r.sources else None) for r in (kb.ask(q, max_images=0) for q in QUESTIONS)]
        status = kb.status()
    return {"documents": status.documents, "chunks": status.chunks, "added": report.to_dict().get("documents")}, firsts


@pytest.mark.slow
def test_the_same_corpus_gives_the_same_counts_and_first_sources_on_both_databases(tmp_path, postgres_url, examples_dir, text_encoder):
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    clip_off = ClipConfig(enabled=False)
    on_sqlite = _answers(Config(store=StoreConfig(path=tmp_path / "sqlite"), clip=clip_off), examples_dir, text_encoder)
    on_postgres = _answers(
        Config(store=StoreConfig(path=tmp_path / "pg", database_url=postgres_url), clip=clip_off), examples_dir, text_encoder
    )
    assert on_postgres[0]["documents"] == on_sqlite[0]["documents"] == 8
    assert on_postgres[0]["chunks"] == on_sqlite[0]["chunks"]
    assert on_postgres[1] == on_sqlite[1] and all(on_sqlite[1])
