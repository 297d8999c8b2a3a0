"""`engine db copy --to URL`: a SQLite store copied to PostgreSQL and back through the command line,
every row counted on both sides, and `engine ask` answering from each copy as from the original."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cli.app import app
from engine.config import ClipConfig, Config, StoreConfig
from engine.kb import KnowledgeBase
from engine.store.schema import metadata

QUESTION = "how is coffee roasted"
CLIP_OFF = {"ENGINE_CLIP_ENABLED": "false"}


def rows_in(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() for t in metadata.sorted_tables}
    finally:
        engine.dispose()


def ask_sources(runner: CliRunner, store, out_file, env: dict) -> list[str]:
    result = runner.invoke(
        app, ["--store", str(store), "ask", QUESTION, "--max-images", "0", "--format", "json", "--out", str(out_file)],
        env={**CLIP_OFF, **env},
    )
    assert result.exit_code == 0, result.output
    return [s["url"] for s in json.loads(out_file.read_text())["sources"]]


@pytest.mark.slow
def test_db_copy_to_postgresql_and_back_keeps_every_row_and_the_answers(tmp_path, postgres_database, examples_dir, text_encoder):
    kb_folder = tmp_path / "kb"
    config = Config(store=StoreConfig(path=kb_folder), clip=ClipConfig(enabled=False))
    with KnowledgeBase(config, text_encoder=text_encoder) as kb:
        kb.index(["coffee", "ancient coins"], [examples_dir / "pages"])
    on_sqlite = rows_in(f"sqlite:///{kb_folder / 'engine.db'}")
    assert on_sqlite["documents"] == 8 and on_sqlite["chunks"] > 0 and on_sqlite["embeddings"] == on_sqlite["chunks"]
    runner = CliRunner()

    copied = runner.invoke(app, ["--store", str(kb_folder), "db", "copy", "--to", postgres_database, "--json"], env=CLIP_OFF)
    assert copied.exit_code == 0, copied.output
    report = json.loads(copied.stdout)
    assert report["target"] == postgres_database
    assert report["rows"] == on_sqlite == rows_in(postgres_database)

    again = runner.invoke(app, ["--store", str(kb_folder), "db", "copy", "--to", postgres_database], env=CLIP_OFF)
    assert again.exit_code == 1
    assert "StoreError" in again.output and "already holds rows" in again.output
    assert rows_in(postgres_database) == on_sqlite, "a refused copy changed the target"

    original = ask_sources(runner, kb_folder, tmp_path / "sqlite.json", {})
    assert original and "coffee" in original[0]
    # The copy, served from PostgreSQL with the same folder (its images and FAISS files); the SQLite
    # database moved away, so that only the server can answer.
    for file in kb_folder.glob("engine.db*"):
        file.rename(tmp_path / file.name)
    on_server = {"ENGINE_STORE_DATABASE_URL": postgres_database}
    assert ask_sources(runner, kb_folder, tmp_path / "pg.json", on_server) == original
    assert not (kb_folder / "engine.db").exists()

    # And back, from the PostgreSQL store into a SQLite URL: a new store folder's database.
    back = tmp_path / "back"
    back.mkdir()
    target = f"sqlite:///{back / 'engine.db'}"
    returned = runner.invoke(app, ["--store", str(kb_folder), "db", "copy", "--to", target], env={**CLIP_OFF, **on_server})
    assert returned.exit_code == 0, returned.output
    on_server_rows = {**on_sqlite, "asks": on_sqlite["asks"] + 1}  # the ask answered from PostgreSQL is remembered there
    assert f"copied {sum(on_server_rows.values())} rows in {len(on_sqlite)} tables to {target}" in " ".join(returned.stdout.split())
    assert rows_in(target) == on_server_rows
    # A folder with the database alone: the FAISS index is rebuilt from it, the answer is the same.
    assert ask_sources(runner, back, tmp_path / "back.json", {}) == original
