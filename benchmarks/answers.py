"""Answer-quality benchmark: does `engine ask` cite the right page first, and refuse what it should?

    .venv/bin/python benchmarks/answers.py [--set dev|holdout|all] [--variant plain|near-duplicates|both]
                                           [--min-score auto|off|NUMBER] [--failures] [--json]
    .venv/bin/python benchmarks/answers.py --questions my_questions.json --variant plain   # another set

About 15 minutes on a 2-core CPU for both variants and both sets, most of it asking.

Corpus: the 12 real article pages of ../shared/data/real-pages (only on the project's
machines) and the 8 example pages (examples/pages, with their image folders), indexed for
examples/topics.txt with the real text model, CLIP off, into temporary stores. Questions:
benchmarks/answers_questions.json ("dev", for tuning) and benchmarks/answers_holdout.json
("holdout", to check that tuning generalises). An answerable question names the page that
answers it; an off-topic one has no answer in the corpus.

Printed per store variant and question set, as markdown, with the targets beside them:
- right first source: answerable questions whose source [1] is the right page (a refusal is wrong);
- right source cited: the right page is among the cited sources;
- answerable refused, and off-topic refused (the relevance cutoff's two kinds of error);
- one page cited twice: answers whose sources include two copies of one page (near-duplicates);
- p50/p95 latency of each stage (AskResult.timings_ms) and of the whole ask, in ms.

Why a near-duplicates variant: news is syndicated. One article appears on many sites (wire
copy, partner reprints), each under its own URL and often with a word edited here and there,
so the store holds them as separate documents with separate content hashes. They must not
push the right page out of source [1] or out of the citations, nor spread the evidence so
thin that the cutoff refuses. In that variant every page is there three times: the original
and two reprints (https://reprint-N.example.net/<path>), each with one word of one sentence
of the main text changed. A source counts as the right page when it is any copy of it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.config import ClipConfig, Config, StoreConfig  # noqa: E402
from engine.kb import KnowledgeBase  # noqa: E402
from indexer.extract import extract  # noqa: E402
from indexer.prepare import canonical_url  # noqa: E402
from indexer.sources import SAVED_FROM  # noqa: E402

REAL_PAGES = REPO.parent / "shared" / "data" / "real-pages"
EXAMPLE_PAGES = REPO / "examples" / "pages"
TOPICS = REPO / "examples" / "topics.txt"
QUESTION_SETS = {
    "dev": REPO / "benchmarks" / "answers_questions.json",
    "holdout": REPO / "benchmarks" / "answers_holdout.json",
}
VARIANTS = {"plain": 0, "near-duplicates": 2}  # reprints per page
TARGETS = {"right_first": (">=", 0.95), "answerable_refused": ("<=", 0.03), "off_topic_refused": (">=", 0.90)}
TEXT_MODEL = "all-MiniLM-L6-v2"

# A reprint's one edit: a word swapped for one meaning about the same ("the" -> "this" when
# the paragraph has none of the others).
SWAPS = {
    "said": "stated", "says": "states", "also": "too", "many": "numerous", "large": "big",
    "big": "large", "small": "little", "important": "significant", "often": "frequently",
    "however": "but", "because": "since", "about": "around", "very": "really", "new": "recent",
    "the": "this",
}
CANONICAL_LINK = re.compile(r"<link\b[^>]*\brel\s*=\s*[\"']?canonical\b[^>]*>", re.IGNORECASE)
OG_URL = re.compile(r"<meta\b[^>]*\bproperty\s*=\s*[\"']?og:url\b[^>]*>", re.IGNORECASE)
DOCTYPE = re.compile(r"\A\s*<!doctype[^>]*>\s*", re.IGNORECASE)


# -- corpus and stores -------------------------------------------------------------------


def corpus_files() -> list[Path]:
    """The benchmark's pages: the real pages, then the example pages (names are unique)."""
    return sorted(REAL_PAGES.glob("*.html")) + sorted(EXAMPLE_PAGES.glob("*.html"))


def page_url(html: str) -> str | None:
    """The page's own web URL: its saved-from stamp, else <link rel=canonical>, else og:url."""
    stamp = SAVED_FROM.search(html[:4096].encode("utf-8", "surrogateescape"))
    if stamp:
        return stamp.group(1).decode("ascii", "replace")
    for tag in (CANONICAL_LINK, OG_URL):
        found = tag.search(html)
        value = found and _attr(found.group(0), "href" if tag is CANONICAL_LINK else "content")
        if value:
            return value
    return None


def reprint(html: str, page: str, n: int) -> str:
    """Copy ``n`` (1, 2, ...) of ``page`` as another site would run it: its own URL in the
    canonical link, og:url and saved-from stamp, and one word changed in one sentence of the
    main text (a different word for each n, so the copies differ from each other too)."""
    url = page_url(html)
    parts = urlsplit(url or "")
    new_url = f"https://reprint-{n}.example.net{parts.path or '/' + page}{'?' + parts.query if parts.query else ''}"
    html = _with_url(html, new_url)
    return _edit_one_word(html, page, n)


def _with_url(html: str, url: str) -> str:
    html = CANONICAL_LINK.sub(lambda m: _set_attr(m.group(0), "href", url), html)
    html = OG_URL.sub(lambda m: _set_attr(m.group(0), "content", url), html)
    stamp = f"<!-- saved from url=({len(url):04d}){url} -->"
    if re.search(r"<!--\s*saved from url=", html[:4096], re.IGNORECASE):
        return re.sub(r"<!--\s*saved from url=\(\d+\)\S+?\s*-->", lambda _: stamp, html, count=1, flags=re.IGNORECASE)
    doctype = DOCTYPE.match(html)  # a browser writes the stamp right after the doctype
    at = doctype.end() if doctype else 0
    return f"{html[:at]}{stamp}\n{html[at:]}"


def _edit_one_word(html: str, page: str, n: int) -> str:
    """``html`` with the ``n``-th workable edit (so copies differ from each other too): one
    swapped word in a paragraph near the middle of the article, checked by extracting the
    text again (that paragraph, and only it, differs)."""
    before = _paragraphs(html, page)
    middle = len(before) / 2
    order = sorted((i for i, p in enumerate(before) if len(p.split()) >= 8), key=lambda i: abs(i - middle))
    found = 0
    for index in order:
        for edited in _word_swaps(html, before[index]):
            after = _paragraphs(edited, page)
            changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
            if len(after) == len(before) and changed == [index]:
                found += 1
                if found == n:
                    return edited
    raise ValueError(f"{page}: found only {found} place(s) where one word could be changed, needed {n}")


def _word_swaps(html: str, paragraph: str):  # noqa: ANN202 - iterator of edited html
    """``html`` with one word of ``paragraph`` swapped, for each place where the word and its
    neighbours occur verbatim in the HTML source (everywhere they occur: the article body is
    often repeated in its JSON-LD; the caller checks that no other paragraph changed)."""
    words = paragraph.split()
    for wanted in SWAPS:
        for i in range(1, len(words) - 1):
            if words[i].lower() != wanted:
                continue
            window = f"{words[i - 1]} {words[i]} {words[i + 1]}"
            if window not in html:
                continue
            swap = SWAPS[wanted].capitalize() if words[i][0].isupper() else SWAPS[wanted]
            yield html.replace(window, f"{words[i - 1]} {swap} {words[i + 1]}")


def _paragraphs(html: str, page: str) -> list[str]:
    return extract(html.encode("utf-8", "surrogateescape"), "", page).text.split("\n\n")


def _attr(tag: str, name: str) -> str | None:
    found = re.search(rf"\b{name}\s*=\s*([\"'])(.*?)\1", tag, re.IGNORECASE | re.DOTALL)
    return found.group(2).strip() if found else None


def _set_attr(tag: str, name: str, value: str) -> str:
    return re.sub(rf"(\b{name}\s*=\s*)([\"']).*?\2", lambda m: f"{m.group(1)}{m.group(2)}{value}{m.group(2)}", tag,
                  count=1, flags=re.IGNORECASE | re.DOTALL)


def write_corpus(variant: str, folder: Path) -> None:
    """The variant's pages under ``folder``: originals at the top, reprint N in ``reprint-N/``
    under the same file name, each beside a copy of its ``<name>_files`` folder."""
    for source in corpus_files():
        html = source.read_bytes().decode("utf-8", "surrogateescape")
        for n in range(VARIANTS[variant] + 1):
            target = folder / (f"reprint-{n}" if n else "") / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            text = reprint(html, source.name, n) if n else html
            target.write_bytes(text.encode("utf-8", "surrogateescape"))
            images = source.with_name(f"{source.stem}_files")
            if images.is_dir():
                shutil.copytree(images, target.with_name(images.name))


def page_of_url(folder: Path) -> dict[str, str]:
    """Every URL a source under ``folder`` can carry -> the page file it is a copy of.

    The engine's URL for a saved page is its saved-from stamp, else the file's URI
    (indexer/sources.py); the canonical link and og:url are added in case it ever prefers
    them, and every URL also in courlan's normal form (the store's key)."""
    urls: dict[str, str] = {}
    for path in folder.rglob("*.html"):
        if any(part.endswith("_files") for part in path.relative_to(folder).parts[:-1]):
            continue
        html = path.read_bytes().decode("utf-8", "surrogateescape")
        stamp = SAVED_FROM.search(html[:4096].encode("utf-8", "surrogateescape"))
        found = [stamp.group(1).decode("ascii", "replace") if stamp else path.resolve().as_uri(), page_url(html)]
        for url in filter(None, found):
            urls[url] = urls[canonical_url(url)] = path.name
    return urls


@dataclass
class BuiltStore:
    """A benchmark store, open, and what it took to build it."""

    variant: str
    kb: KnowledgeBase
    page_of_url: dict[str, str]
    pages: int  # HTML files indexed
    documents: int  # documents stored
    failures: list[str]  # pages the indexer refused, with the reason
    missing_images: int  # images the pages reference but the input lacks (the real pages have none saved)
    index_seconds: float
    first_ask_seconds: float  # model warm-up and the relevance calibration


def build_store(variant: str, tmp: Path, encoder) -> BuiltStore:  # noqa: ANN001 - engine TextEncoder
    """Write the ``variant``'s pages under ``tmp/pages``, index them into ``tmp/store``; the
    caller closes ``.kb``."""
    folder = Path(tmp) / "pages"
    write_corpus(variant, folder)
    config = Config(store=StoreConfig(path=Path(tmp) / "store"), clip=ClipConfig(enabled=False))
    kb = KnowledgeBase(config, text_encoder=encoder)
    try:
        started = time.perf_counter()
        report = kb.index(load_topics(), [folder])
        indexed = time.perf_counter()
        kb.ask("warm-up question", max_images=0)
        warmed = time.perf_counter()
        return BuiltStore(
            variant, kb, page_of_url(folder),
            pages=len(corpus_files()) * (VARIANTS[variant] + 1),
            documents=document_count(kb),
            failures=[f"{f.origin}: {f.reason}" for f in report.failures if f.kind != "image"],
            missing_images=sum(f.kind == "image" for f in report.failures),
            index_seconds=indexed - started,
            first_ask_seconds=warmed - indexed,
        )
    except BaseException:
        kb.close()
        raise


def document_count(kb: KnowledgeBase) -> int:
    from sqlalchemy import func, select

    from engine.store.schema import documents

    with kb.store.reading() as conn:
        return conn.execute(select(func.count()).select_from(documents)).scalar_one()


def load_topics() -> list[str]:
    lines = (line.strip() for line in TOPICS.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


# -- questions and scoring ---------------------------------------------------------------


def load_questions(name: str) -> dict:
    """The question set ``name`` (dev | holdout) or the JSON file at that path, checked:
    every answerable question names a page of the corpus."""
    path = QUESTION_SETS.get(name, Path(name))
    if not path.exists():
        raise FileNotFoundError(f"question set {name!r}: {path} not found")
    questions = json.loads(path.read_text())
    known = {p.name for p in corpus_files()}
    unknown = sorted({q["page"] for q in questions["answerable"]} - known)
    if unknown:
        raise ValueError(f"{path}: pages not in the corpus: {', '.join(unknown)}")
    questions.setdefault("off_topic", [])
    return questions


def evaluate(kb: KnowledgeBase, questions: dict, page_of_url: dict[str, str], min_score: str | None = None) -> dict:
    """Ask every question of ``questions``; counts, rates, latencies and one record per question."""
    records = [_ask(kb, q, page_of_url, min_score) for q in questions["answerable"] + questions["off_topic"]]
    answerable = [r for r in records if r["page"] is not None]
    off_topic = [r for r in records if r["page"] is None]
    counts = {
        "answerable": len(answerable),
        "right_first": sum(r["first_page"] == r["page"] for r in answerable),
        "right_cited": sum(r["page"] in r["cited_pages"] for r in answerable),
        "answerable_refused": sum(r["refused"] for r in answerable),
        "off_topic": len(off_topic),
        "off_topic_refused": sum(r["refused"] for r in off_topic),
        # off-topic questions near a page's subject (e.g. another JSON library) and far from all of them
        "off_topic_near": sum(r["near"] is not None for r in off_topic),
        "off_topic_near_refused": sum(r["refused"] for r in off_topic if r["near"] is not None),
        "off_topic_far": sum(r["near"] is None for r in off_topic),
        "off_topic_far_refused": sum(r["refused"] for r in off_topic if r["near"] is None),
        # answers that cite two copies of one page: a reader sees the same article as two sources
        "repeated_page": sum(len(set(r["cited_pages"])) < len(r["cited_pages"]) for r in answerable),
    }
    rates = {key: _rate(counts[key], counts[_total_of(key)]) for key in RATES}
    return {"counts": counts, "rates": rates, "latency_ms": _latencies(records), "questions": records}


def _ask(kb: KnowledgeBase, question: dict, page_of_url: dict[str, str], min_score: str | None) -> dict:
    started = time.perf_counter()
    result = kb.ask(question["question"], max_images=0, min_score=min_score)
    seconds = time.perf_counter() - started
    pages = [_page(page_of_url, s.url) for s in sorted(result.sources, key=lambda s: s.number)]
    return {
        "question": question["question"],
        "page": question.get("page"),  # None: off-topic
        "near": question.get("near"),  # off-topic: the page it sounds closest to, if any
        "refused": result.nothing_relevant,
        "first_page": None if result.nothing_relevant or not pages else pages[0],
        "cited_pages": [] if result.nothing_relevant else pages,
        "relevance": dict(result.relevance),
        "timings_ms": {**result.timings_ms, "ask": round(1000 * seconds, 3)},
    }


# The rates evaluate() reports, in table order, and what each is counted over.
RATES = ("right_first", "right_cited", "answerable_refused", "off_topic_refused", "off_topic_far_refused",
         "off_topic_near_refused", "repeated_page")


def _total_of(rate: str) -> str:
    if rate.startswith("off_topic_"):
        return rate.removesuffix("_refused")
    return "off_topic" if rate.startswith("off") else "answerable"


def _page(page_of_url: dict[str, str], url: str) -> str:
    return page_of_url.get(url) or page_of_url.get(canonical_url(url)) or f"? {url}"


def _rate(count: int, total: int) -> float | None:
    return count / total if total else None


def _latencies(records: list[dict]) -> dict[str, dict[str, float]]:
    """p50/p95 per stage over the questions that ran it; "ask" (the whole call) last."""
    stages = list(dict.fromkeys(s for r in records for s in r["timings_ms"] if s != "ask")) + ["ask"]
    found = {}
    for stage in stages:
        values = [r["timings_ms"][stage] for r in records if stage in r["timings_ms"]]
        if values:
            found[stage] = {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95)), "n": len(values)}
    return found


def failures(figures: dict) -> list[dict]:
    """Answerable questions answered from the wrong page or refused; off-topic ones answered."""
    return [
        r for r in figures["questions"]
        if (r["page"] is None and not r["refused"]) or (r["page"] is not None and r["first_page"] != r["page"])
    ]


def misses(figures: dict) -> list[str]:
    """The targets the figures miss, each as "name rate (count/total) vs target"."""
    return [
        f"{name} {figure(figures, name)} vs target {op} {bound:.0%}"
        for name, (op, bound) in TARGETS.items()
        if figures["rates"][name] is not None and not meets(figures["rates"][name], op, bound)
    ]


def meets(rate: float, op: str, bound: float) -> bool:
    return rate >= bound if op == ">=" else rate <= bound


# -- report ------------------------------------------------------------------------------


def _percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{100 * rate:.1f}%"


def figure(figures: dict, name: str) -> str:
    """One rate of ``evaluate``'s figures as "95.0% (38/40)"."""
    counts = figures["counts"]
    total = counts[_total_of(name)]
    return f"{_percent(figures['rates'][name])} ({counts[name]}/{total})"


def _cell(figures: dict, name: str) -> str:
    rate = figures["rates"][name]
    missed = name in TARGETS and rate is not None and not meets(rate, *TARGETS[name])
    return figure(figures, name) + (" ✗" if missed else "")


def quality_table(results: dict[str, dict[str, dict]], stores: dict[str, BuiltStore]) -> str:
    rows = [
        "| store | set | right first source | right source cited | answerable refused | off-topic refused"
        " | far | near | one page cited twice |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for variant, by_set in results.items():
        for set_name, figures in by_set.items():
            store = f"{variant} ({stores[variant].documents} docs)"
            cells = [_cell(figures, n) for n in figures["rates"]]
            rows.append(f"| {store} | {set_name} | {' | '.join(cells)} |")
    rows.append("| **target** | | >= 95% | | <= 3% | >= 90% | | | |")
    return "\n".join(rows)


def latency_table(results: dict[str, dict[str, dict]]) -> str:
    everything = [f for by_set in results.values() for f in by_set.values()]
    stages = list(dict.fromkeys(s for f in everything for s in f["latency_ms"]))
    stages = [s for s in stages if s != "ask"] + ["ask"]
    rows = [f"| store | set | {' | '.join(stages)} |", "| --- | --- |" + " ---: |" * len(stages)]
    for variant, by_set in results.items():
        for set_name, figures in by_set.items():
            latency = figures["latency_ms"]
            cells = [f"{latency[s]['p50']:.1f} / {latency[s]['p95']:.1f}" if s in latency else "" for s in stages]
            rows.append(f"| {variant} | {set_name} | {' | '.join(cells)} |")
    return "\n".join(rows)


def failure_lines(results: dict[str, dict[str, dict]]) -> list[str]:
    lines = []
    for variant, by_set in results.items():
        for set_name, figures in by_set.items():
            wrong = failures(figures)
            lines.append(f"\n### {variant} / {set_name}: {len(wrong)} wrong\n")
            for r in wrong:
                scores = ", ".join(f"{k}={v}" for k, v in r["relevance"].items() if k != "nothing_relevant")
                if r["page"] is None:
                    what = f"off-topic (near {r['near']}), answered from {r['first_page']}"
                elif r["refused"]:
                    what = f"refused; wanted {r['page']}"
                else:
                    what = f"[1] is {r['first_page']}; wanted {r['page']}" + (" (cited)" if r["page"] in r["cited_pages"] else "")
                lines.append(f"- {r['question']!r}: {what} [{scores}]")
    return lines


def _commit() -> str:
    try:
        run = lambda *args: subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()  # noqa: E731
        return run("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if run("status", "--porcelain") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# -- command line ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default="all", choices=["dev", "holdout", "all"], help="question set (default: all)")
    parser.add_argument("--questions", metavar="FILE", help="another question file in the same format, instead of --set")
    parser.add_argument("--variant", default="both", choices=[*VARIANTS, "both"], help="store variant (default: both)")
    parser.add_argument("--min-score", help="passed to kb.ask: auto, off or a number (default: the configured one)")
    parser.add_argument("--text-runtime", default="auto", choices=["auto", "torch", "onnx", "onnx-int8"],
                        help="the text model's runtime (text.runtime; default auto, the engine's: onnx for these new stores)")
    parser.add_argument("--failures", action="store_true", help="list each wrong answer with its relevance scores")
    parser.add_argument("--json", action="store_true", help="print one JSON object with every figure instead")
    args = parser.parse_args(argv)
    if not REAL_PAGES.is_dir():
        print(f"answers.py: the real pages are not here ({REAL_PAGES}); they exist only on the project's machines",
              file=sys.stderr)
        return 2
    try:
        question_sets = _question_sets(args)
    except (OSError, ValueError, KeyError) as exc:
        print(f"answers.py: {exc}", file=sys.stderr)
        return 2

    from engine.config import TextModelConfig
    from engine.encoders.factory import build_text_encoder

    command = "python benchmarks/answers.py " + " ".join(sys.argv[1:] if argv is None else argv)
    encoder = build_text_encoder(TextModelConfig(model=TEXT_MODEL, runtime=args.text_runtime))
    variants = list(VARIANTS) if args.variant == "both" else [args.variant]
    stores: dict[str, BuiltStore] = {}
    results: dict[str, dict[str, dict]] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="engine-answers-") as tmp:
        try:
            for variant in variants:
                _progress(f"building the {variant} store ...")
                stores[variant] = store = build_store(variant, Path(tmp) / variant, encoder)
                _progress(f"  {store.pages} pages -> {store.documents} documents ({store.missing_images} images not in "
                          f"the input); indexed in {store.index_seconds:.1f}s, first ask {store.first_ask_seconds:.1f}s")
                for failure in store.failures:
                    _progress(f"  refused input: {failure}")
                results[variant] = {}
                for set_name, questions in question_sets.items():
                    started = time.perf_counter()
                    results[variant][set_name] = evaluate(store.kb, questions, store.page_of_url, args.min_score)
                    seconds[f"{variant}/{set_name}"] = time.perf_counter() - started
                    _progress(f"  asked {set_name}: {time.perf_counter() - started:.1f}s")
        finally:
            for store in stores.values():
                store.kb.close()
    checks = _document_checks(stores)
    if args.json:
        print(json.dumps(_json(command, args, stores, results, seconds, checks), indent=2))
    else:
        print(_markdown(command, args, stores, results, seconds, checks))
    return 0


def _question_sets(args: argparse.Namespace) -> dict[str, dict]:
    if args.questions:
        return {Path(args.questions).stem: load_questions(args.questions)}
    if args.set != "all":
        return {args.set: load_questions(args.set)}
    present = {name: path for name, path in QUESTION_SETS.items() if path.exists()}
    for name in QUESTION_SETS.keys() - present.keys():
        _progress(f"note: question set {name} ({QUESTION_SETS[name]}) is not there yet; skipped")
    if not present:
        raise FileNotFoundError(f"no question set found ({', '.join(map(str, QUESTION_SETS.values()))})")
    return {name: load_questions(name) for name in present}


def _document_checks(stores: dict[str, BuiltStore]) -> list[str]:
    """Warnings when a store does not hold one document per page file (copies that deduped)."""
    return [
        f"{s.variant}: expected {s.pages} documents (one per page file), found {s.documents}"
        for s in stores.values() if s.documents != s.pages
    ]


def _markdown(command, args, stores, results, seconds, checks) -> str:  # noqa: ANN001
    counts = ", ".join(f"{v}: {s.pages} pages -> {s.documents} documents" for v, s in stores.items())
    if {"plain", "near-duplicates"} <= stores.keys():
        ratio = stores["near-duplicates"].documents / max(1, stores["plain"].documents)
        counts += f" ({ratio:.2f}x the plain store)"
    parts = [
        f"Answer quality, {date.today().isoformat()}, engine {_commit()}, min_score {args.min_score or 'as configured'}, text.runtime {args.text_runtime}",
        f"`{command}`",
        f"Stores: {counts}.",
        *[f"**WARNING** {c}" for c in checks],
        quality_table(results, stores),
        "Latency, ms, p50 / p95 per question:",
        latency_table(results),
        "Time: " + "; ".join(
            [f"index {v} {s.index_seconds:.0f}s, first ask {s.first_ask_seconds:.1f}s" for v, s in stores.items()]
            + [f"ask {k} {v:.0f}s" for k, v in seconds.items()]
        ) + ".",
    ]
    text = "\n\n".join(parts)
    if args.failures:
        text += "\n" + "\n".join(failure_lines(results))
    return text


def _json(command, args, stores, results, seconds, checks) -> dict:  # noqa: ANN001
    return {
        "date": date.today().isoformat(),
        "command": command,
        "engine": _commit(),
        "min_score": args.min_score,
        "targets": {k: {"op": op, "bound": b} for k, (op, b) in TARGETS.items()},
        "stores": {
            v: {"pages": s.pages, "documents": s.documents, "index_seconds": round(s.index_seconds, 2),
                "first_ask_seconds": round(s.first_ask_seconds, 2), "failures": s.failures,
                "missing_images": s.missing_images}
            for v, s in stores.items()
        },
        "warnings": checks,
        "results": {v: {n: {**f, "misses": misses(f)} for n, f in by_set.items()} for v, by_set in results.items()},
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
