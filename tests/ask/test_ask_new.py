"""`engine ask --new`: asks are remembered, and an answer can come from what is new since the last one."""

from __future__ import annotations

import json
import shutil

from sqlalchemy import select
from typer.testing import CliRunner

from cli.app import app
from engine.store.schema import asks, documents

QUESTION = "how are coffee beans roasted"


def copy_pages(examples_dir, target, *names):
    target.mkdir()
    for name in names:
        shutil.copy(examples_dir / "pages" / f"{name}.html", target)
        files = examples_dir / "pages" / f"{name}_files"
        if files.exists():
            shutil.copytree(files, target / f"{name}_files")
    return target


def cited_urls(result) -> set[str]:
    return {s.url.rsplit("/", 1)[-1] for s in result.sources}


def test_new_answers_only_from_documents_added_or_changed_since_the_last_ask(kb, examples_dir, tmp_path):
    first_pages = copy_pages(examples_dir, tmp_path / "first", "coffee-roasting", "cat-behaviour", "roman-coinage")
    kb.index(["coffee"], [first_pages])

    first = kb.ask(QUESTION, new=True)
    assert first.new["since"] is None and first.new["new_documents"] == 3
    assert "the first time this is asked: every stored document counts as new" in first.notices
    assert cited_urls(first) == {"how-coffee-is-roasted.html"}

    again = kb.ask("How are coffee beans  roasted?", new=True)  # the same question, written differently
    assert again.nothing_new and again.summary == [] and again.sources == []
    assert again.new["new_documents"] == 0 and again.new["since"].startswith(first.new.get("since") or "20")

    kb.index(["coffee"], [copy_pages(examples_dir, tmp_path / "second", "espresso-chemistry", "hubble-deep-fields")])
    newer = kb.ask(QUESTION, new=True)
    assert newer.new["new_documents"] == 2
    assert cited_urls(newer) == {"espresso-chemistry.html"}  # not the coffee page it already had

    # A page whose text changed is new again; one that did not change is not.
    page = first_pages / "coffee-roasting.html"
    page.write_text(page.read_text().replace("in a roaster.</p>", "in a roaster. Roasters now log every batch's first crack time.</p>", 1))
    kb.index(["coffee"], [first_pages])
    changed = kb.ask(QUESTION, new=True)
    assert changed.new["new_documents"] == 1 and cited_urls(changed) == {"how-coffee-is-roasted.html"}

    # Without --new the whole store answers, and every ask is remembered with what it cited.
    whole = kb.ask(QUESTION)
    assert whole.new is None and {"how-coffee-is-roasted.html", "espresso-chemistry.html"} <= cited_urls(whole)
    with kb.store.reading() as conn:
        remembered = conn.execute(select(asks.c.question, asks.c.new_only, asks.c.cited).order_by(asks.c.id)).all()
    assert [json.loads(c) for _, _, c in remembered] == [
        sorted({s.document_id for s in r.sources}) for r in (first, again, newer, changed, whole)
    ]


def test_new_respects_the_other_filters(kb, examples_dir, tmp_path):
    kb.index(["coffee", "space exploration"], [copy_pages(examples_dir, tmp_path / "a", "coffee-roasting")])
    kb.ask(QUESTION, new=True)
    kb.index(["coffee", "space exploration"], [copy_pages(examples_dir, tmp_path / "b", "hubble-deep-fields")])
    from engine.ask import Filters

    only_coffee = kb.ask(QUESTION, new=True, filters=Filters(topic="coffee"))
    assert only_coffee.nothing_new  # the new page is not about coffee
    with kb.store.reading() as conn:
        assert conn.execute(select(documents.c.id)).all().__len__() == 2


def test_the_cli_says_plainly_when_nothing_is_new_and_json_carries_it(tmp_path, examples_dir):
    store = str(tmp_path / "kb")
    pages = copy_pages(examples_dir, tmp_path / "pages", "coffee-roasting", "espresso-chemistry")
    env = {"ENGINE_CLIP_ENABLED": "false"}
    runner = CliRunner()
    assert runner.invoke(app, ["--store", store, "index", "--from", str(pages)], env=env).exit_code == 0
    first = runner.invoke(app, ["--store", store, "ask", QUESTION, "--new", "--format", "json"], env=env)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["new"]["since"] is None
    second = runner.invoke(app, ["--store", store, "ask", QUESTION, "--new"], env=env)
    assert second.exit_code == 0, second.output
    assert "Nothing new since 20" in second.stdout and "when this was last asked" in second.stdout
    as_json = json.loads(runner.invoke(app, ["--store", store, "ask", QUESTION, "--new", "--format", "json"], env=env).stdout)
    assert as_json["new"]["new_documents"] == 0 and as_json["sources"] == [] and as_json["summary"] == []


def test_an_ask_not_to_remember_leaves_no_trace(kb, examples_dir, tmp_path):
    kb.index(["coffee"], [copy_pages(examples_dir, tmp_path / "a", "coffee-roasting")])
    kb.ask("warm up", remember=False)
    kb.ask(QUESTION, remember=False)
    with kb.store.reading() as conn:
        assert conn.execute(select(asks.c.id)).first() is None
    assert kb.ask(QUESTION, new=True).new["since"] is None  # so the next --new is still the first
