"""Forgetting: take documents out of the store for good, with everything that hangs on them.

What can be forgotten (a :class:`Selection`; selectors add up):

- a source URL, exactly (as the store keys it: courlan-normalised, or as recorded), or every
  URL starting with a prefix (a selector ending in ``*``, or any URL with ``prefix=True``);
- a local file that was indexed, by its path (a folder: everything indexed from under it; an
  archive: all its records) or by its ``file://`` URL;
- a document id;
- a topic: its documents (links scoring at least ``index.topic_min_similarity``) that no
  other topic holds, and the topic itself with its crawl state;
- ``gone``: documents whose page answered 404 or 410 when the crawl last checked it.

A URL (or path, or ``gone``) selects *sources*: the document they hold goes when no other
source still holds it; one that stays (the same text is stored from another URL as well) is
reported in :attr:`ForgetPlan.kept`. A document id or a topic selects documents, with all
their sources.

Everything goes in ONE write transaction, under the store's write lock: sources, documents,
chunks (the full-text index follows by trigger on SQLite, by its generated column on
PostgreSQL), topic links, image links, images no remaining document shows, their vectors
(text and clip_text of the chunks, clip_image of the images, logged in the change log so
readers' FAISS caches catch up without a rebuild), the crawl frontier rows of the forgotten
pages and the topic rows. A process killed at any moment leaves either all of it or none.

Image files are content-addressed and deleted only after the commit. A kill between the
commit and the deletion leaves files no image row names: harmless (``engine check`` notes
them, it does not fail), and every later forget sweeps them: under the write lock no writer
is half-way through a page, so a file no row names is garbage.

The crawl frontier: the forgotten pages' rows (and those of image candidates found on them)
are deleted, so the next crawl round does not revalidate those URLs and re-add the pages.
Forgetting is not a block list: a URL that discovery proposes again, or a file given again to
``engine index --from``, is indexed again as new.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from sqlalchemy import Connection, delete, func, or_, select

from engine.errors import ConfigError, InputError
from engine.store.schema import (
    CLIP_IMAGE_SPACE,
    CLIP_TEXT_SPACE,
    TEXT_SPACE,
    chunks,
    crawl_topics,
    crawl_url_topics,
    crawl_urls,
    document_images,
    documents,
    embeddings,
    images,
    sources,
    topic_documents,
    topics,
)
from engine.store.store import Store

# HTTP statuses that mean the page was removed (what the crawl files as `gone`).
GONE_STATUSES = (404, 410)
# Ids per IN (...) list: well under SQLite's bound-parameter limit.
BATCH = 500
_WEB = re.compile(r"^https?://", re.IGNORECASE)


# -- what to forget ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """What to forget. Build it from command-line words with :meth:`parse`."""

    urls: tuple[str, ...] = ()  # exact URLs (http(s)://, file://)
    prefixes: tuple[str, ...] = ()  # URL prefixes
    paths: tuple[str, ...] = ()  # local files or folders that were indexed
    document_ids: tuple[int, ...] = ()
    topics: tuple[str, ...] = ()
    gone: bool = False

    @classmethod
    def parse(cls, words: Sequence[str] = (), topics: Sequence[str] = (), gone: bool = False, prefix: bool = False) -> "Selection":
        """Each word is a document id (digits), a URL (``http(s)://`` or ``file://``; a prefix when
        it ends with ``*`` or ``prefix`` is set) or the path of an indexed file or folder."""
        urls, prefixes, paths, ids = [], [], [], []
        for word in words:
            word = word.strip()
            if not word:
                continue
            if word.isascii() and word.isdigit():  # "²".isdigit() is true, and int() refuses it
                ids.append(int(word))
            elif _WEB.match(word) or word.lower().startswith("file://"):
                if word.endswith("*") or prefix:
                    prefixes.append(word.rstrip("*"))
                else:
                    urls.append(word)
            else:
                paths.append(word)
        names = tuple(t.strip() for t in topics if t.strip())
        return cls(tuple(urls), tuple(p for p in prefixes if p), tuple(paths), tuple(ids), names, gone)

    @property
    def empty(self) -> bool:
        return not (self.urls or self.prefixes or self.paths or self.document_ids or self.topics or self.gone)


# -- the plan ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForgottenDocument:
    id: int
    title: str | None
    url: str | None  # the URL answers cited it by (its most recently updated source)
    urls: tuple[str, ...]  # every source URL it was stored from
    chunks: int
    images: int  # images it showed (shared ones included)


@dataclass(frozen=True)
class ForgottenImage:
    id: int
    path: str  # the file, relative to the store's root


@dataclass(frozen=True)
class KeptDocument:
    """A document whose selected sources go while another source still holds it."""

    id: int
    title: str | None
    still_at: tuple[str, ...]


@dataclass(frozen=True)
class ForgetPlan:
    """Everything a forget removes, computed before anything changes."""

    documents: tuple[ForgottenDocument, ...] = ()
    sources: tuple[str, ...] = ()  # URLs of every source row that goes
    kept: tuple[KeptDocument, ...] = ()
    chunk_ids: tuple[int, ...] = ()
    images: tuple[ForgottenImage, ...] = ()  # images no remaining document shows
    topics: tuple[str, ...] = ()
    crawl_urls: tuple[str, ...] = ()  # frontier rows that go
    orphan_files: tuple[str, ...] = ()  # image files no image row names (left by a killed run)
    # Internal ids the apply step needs; not part of the report.
    _source_ids: tuple[int, ...] = field(default=(), repr=False)
    _topic_ids: tuple[int, ...] = field(default=(), repr=False)
    _crawl_url_ids: tuple[int, ...] = field(default=(), repr=False)

    @property
    def empty(self) -> bool:
        return not (self.documents or self.sources or self.images or self.topics or self.crawl_urls or self.orphan_files)

    @property
    def files(self) -> tuple[str, ...]:
        """Every image file that goes: the forgotten images' and the orphans."""
        return tuple(dict.fromkeys([i.path for i in self.images] + list(self.orphan_files)))

    def to_dict(self) -> dict:
        return {
            "documents": [asdict(d) for d in self.documents],
            "sources": list(self.sources),
            "kept": [asdict(k) for k in self.kept],
            "chunks": len(self.chunk_ids),
            "images": [asdict(i) for i in self.images],
            "topics": list(self.topics),
            "crawl_urls": list(self.crawl_urls),
            "orphan_files": list(self.orphan_files),
        }


@dataclass(frozen=True)
class ForgetReport:
    plan: ForgetPlan
    dry_run: bool
    files_deleted: int = 0  # image files actually removed from disk (0 for a dry run)

    def to_dict(self) -> dict:
        return {"dry_run": self.dry_run, **self.plan.to_dict(), "files_deleted": self.files_deleted}


# -- the one entry point -------------------------------------------------------------------------


def forget(store: Store, selection: Selection, topic_min_similarity: float, dry_run: bool = False) -> ForgetReport:
    """Forget what ``selection`` names; with ``dry_run``, only say what would go.

    Raises:
        ConfigError: the selection names nothing.
        InputError: a document id, URL, path or topic it names is not stored.
        StoreError: another process writes the store now.
    """
    if selection.empty:
        raise ConfigError("nothing to forget: give URLs, document ids or indexed paths, --topic NAME or --gone")
    if dry_run:
        with store.reading() as conn:
            return ForgetReport(plan_forget(conn, store, selection, topic_min_similarity), dry_run=True)
    store.acquire_write_lock()
    try:
        # Garbage first, so that even a forget that then finds nothing to do (the rerun of one
        # killed after its commit) leaves no unreferenced files behind.
        swept, swept_deleted = _sweep_orphans(store)
        try:
            with store.transaction() as conn:
                plan = replace(plan_forget(conn, store, selection, topic_min_similarity), orphan_files=swept)
                changed = _apply(conn, store, plan)
        except BaseException:
            store.discard_uncommitted()
            raise
        # Committed. From here a kill leaves only unreferenced files and a stale FAISS cache,
        # both repaired later (the next forget sweeps; readers catch up through the change log).
        store.apply_committed()
        if plan.images:
            store.discard_uncommitted()  # also drops the near-duplicate cache, which names removed images
        deleted = _after_commit(store, plan, changed)
        return ForgetReport(plan, dry_run=False, files_deleted=deleted + swept_deleted)
    finally:
        store.wait_for_upgrades()  # a rebuild started by the writer saves under the lock
        store.release_write_lock()


def _sweep_orphans(store: Store) -> tuple[tuple[str, ...], int]:
    """Delete the image files no image row names (the caller holds the write lock, so no
    writer is between writing a file and committing its row); return them and how many went."""
    with store.reading() as conn:
        orphans = _orphan_files(conn, store)
    return orphans, _delete_files(store, orphans)


# -- planning --------------------------------------------------------------------------------


def plan_forget(conn: Connection, store: Store, selection: Selection, topic_min_similarity: float) -> ForgetPlan:
    """What forgetting ``selection`` removes, read in ``conn`` (changes nothing)."""
    source_ids: set[int] = set()
    for url in selection.urls:
        found = _sources_with_url(conn, url)
        if not found:
            raise InputError(url, "no stored page has this URL (engine forget takes the URL a page was stored from)")
        source_ids |= found
    for prefix in selection.prefixes:
        found = _sources_with_prefix(conn, prefix)
        if not found:
            raise InputError(prefix + "*", "no stored page's URL starts with this")
        source_ids |= found
    for path in selection.paths:
        found = _sources_from_path(conn, path)
        if not found:
            raise InputError(path, "nothing stored was read from this path (give the path or URL it was indexed from)")
        source_ids |= found
    if selection.gone:
        source_ids |= _gone_sources(conn)

    whole_docs: set[int] = set()  # documents that go with all their sources
    for doc_id in selection.document_ids:
        if conn.execute(select(documents.c.id).where(documents.c.id == doc_id)).first() is None:
            raise InputError(f"document {doc_id}", "no such document (ids are in `engine ask --format json` and /v1/documents)")
        whole_docs.add(doc_id)
    topic_rows: dict[int, str] = {}
    for name in selection.topics:
        topic_id = conn.execute(select(topics.c.id).where(topics.c.name == name)).scalar()
        if topic_id is None:
            raise InputError(f"topic {name!r}", "no such topic (engine status lists them)")
        topic_rows[topic_id] = name
    if topic_rows:
        whole_docs |= _documents_only_of(conn, set(topic_rows), topic_min_similarity)
    if whole_docs:
        source_ids |= set(_in(conn, select(sources.c.id), sources.c.document_id, whole_docs))

    # Documents of the selected sources go when no other source holds them.
    source_rows = _rows(conn, select(sources.c.id, sources.c.document_id, sources.c.canonical_url, sources.c.url, sources.c.origin), sources.c.id, source_ids)
    held = {r.document_id for r in source_rows if r.document_id is not None} - whole_docs
    kept: list[KeptDocument] = []
    doc_ids = set(whole_docs)
    if held:
        others: dict[int, list[str]] = {}
        for r in _rows(conn, select(sources.c.id, sources.c.document_id, sources.c.url), sources.c.document_id, held):
            if r.id not in source_ids:
                others.setdefault(r.document_id, []).append(r.url)
        doc_ids |= held - set(others)
        titles = dict(_rows(conn, select(documents.c.id, documents.c.title), documents.c.id, set(others)))
        kept = [KeptDocument(d, titles.get(d), tuple(sorted(urls))) for d, urls in sorted(others.items())]

    forgotten = _describe_documents(conn, doc_ids)
    chunk_ids = sorted(_in(conn, select(chunks.c.id), chunks.c.document_id, doc_ids))
    gone_images = _images_left_unshown(conn, doc_ids)
    crawl_rows = _crawl_rows(conn, source_rows, set(topic_rows))
    orphans = _orphan_files(conn, store)
    return ForgetPlan(
        documents=forgotten,
        sources=tuple(sorted(r.url for r in source_rows)),
        kept=tuple(kept),
        chunk_ids=tuple(chunk_ids),
        images=gone_images,
        topics=tuple(sorted(topic_rows.values())),
        crawl_urls=tuple(sorted(url for _, url in crawl_rows)),
        orphan_files=orphans,
        _source_ids=tuple(sorted(source_ids)),
        _topic_ids=tuple(sorted(topic_rows)),
        _crawl_url_ids=tuple(sorted(i for i, _ in crawl_rows)),
    )


def _sources_with_url(conn: Connection, url: str) -> set[int]:
    from indexer.prepare import canonical_url

    keys = {url, canonical_url(url)}
    query = select(sources.c.id).where(or_(sources.c.canonical_url.in_(keys), sources.c.url == url))
    return set(conn.execute(query).scalars())


def _sources_with_prefix(conn: Connection, prefix: str) -> set[int]:
    query = select(sources.c.id).where(
        or_(sources.c.canonical_url.startswith(prefix, autoescape=True), sources.c.url.startswith(prefix, autoescape=True))
    )
    return set(conn.execute(query).scalars())


def _sources_from_path(conn: Connection, word: str) -> set[int]:
    """Sources read from a local file (its path as given then, or now resolved; archives by
    their records' ``archive@offset``; a folder: everything under it), or by its file:// URI."""
    path = Path(word).expanduser()
    resolved = path.resolve()
    names = {word, str(path), str(resolved)}
    if word.endswith("*"):
        bare = word.rstrip("*")
        return set(
            conn.execute(select(sources.c.id).where(
                or_(sources.c.origin.startswith(bare, autoescape=True), sources.c.origin.startswith(str(Path(bare).resolve()), autoescape=True))
            )).scalars()
        )
    conditions = [sources.c.origin.in_(names), sources.c.canonical_url == resolved.as_uri(), sources.c.url == resolved.as_uri()]
    for name in names:
        conditions.append(sources.c.origin.startswith(name + "@", autoescape=True))  # a WARC/ARC record
        if path.is_dir():
            under = name.rstrip(os.sep) + os.sep
            conditions.append(sources.c.origin.startswith(under, autoescape=True))
    if path.is_dir():
        conditions.append(sources.c.canonical_url.startswith(resolved.as_uri().rstrip("/") + "/", autoescape=True))
    return set(conn.execute(select(sources.c.id).where(or_(*conditions))).scalars())


def _gone_sources(conn: Connection) -> set[int]:
    """Sources whose page answered 404/410 when last checked: the crawl frontier's ``gone``
    pages (keyed by the URL the crawl asked for, which is also the source's origin), and
    sources recorded with such a status."""
    from indexer.prepare import canonical_url

    gone_pages = conn.execute(
        select(crawl_urls.c.canonical_url, crawl_urls.c.url).where(
            crawl_urls.c.kind == "page",
            or_(crawl_urls.c.status == "gone", crawl_urls.c.http_status.in_(GONE_STATUSES)),
        )
    ).all()
    keys = {key for key, _ in gone_pages}
    urls = {url for _, url in gone_pages}
    found = set(conn.execute(select(sources.c.id).where(sources.c.http_status.in_(GONE_STATUSES))).scalars())
    for batch in _batches(sorted(keys | urls)):
        found |= set(conn.execute(
            select(sources.c.id).where(or_(sources.c.canonical_url.in_(batch), sources.c.origin.in_(batch)))
        ).scalars())
    # A crawled source's origin is the frontier URL as discovered; compare canonically too.
    if keys:
        for source_id, origin in conn.execute(select(sources.c.id, sources.c.origin).where(sources.c.origin.like("http%"))):
            if canonical_url(origin) in keys:
                found.add(source_id)
    return found


def _documents_only_of(conn: Connection, topic_ids: set[int], min_similarity: float) -> set[int]:
    """Documents linked (at least ``min_similarity``) to one of ``topic_ids`` and to no other topic."""
    linked = set(conn.execute(
        select(topic_documents.c.document_id).where(
            topic_documents.c.topic_id.in_(topic_ids), topic_documents.c.score >= min_similarity
        )
    ).scalars())
    elsewhere = set()
    for batch in _batches(sorted(linked)):
        elsewhere |= set(conn.execute(
            select(topic_documents.c.document_id).where(
                topic_documents.c.document_id.in_(batch),
                topic_documents.c.topic_id.not_in(topic_ids),
                topic_documents.c.score >= min_similarity,
            )
        ).scalars())
    return linked - elsewhere


def _describe_documents(conn: Connection, doc_ids: set[int]) -> tuple[ForgottenDocument, ...]:
    if not doc_ids:
        return ()
    titles = dict(_rows(conn, select(documents.c.id, documents.c.title), documents.c.id, doc_ids))
    urls: dict[int, list[tuple[float, str]]] = {}
    for r in _rows(conn, select(sources.c.document_id, sources.c.url, sources.c.updated_at), sources.c.document_id, doc_ids):
        urls.setdefault(r.document_id, []).append((r.updated_at or 0.0, r.url))
    chunk_counts = dict(_rows(
        conn, select(chunks.c.document_id, func.count()).group_by(chunks.c.document_id), chunks.c.document_id, doc_ids
    ))
    image_counts = dict(_rows(
        conn, select(document_images.c.document_id, func.count()).group_by(document_images.c.document_id),
        document_images.c.document_id, doc_ids,
    ))
    out = []
    for doc_id in sorted(doc_ids):
        found = sorted(urls.get(doc_id, []), reverse=True)
        out.append(ForgottenDocument(
            id=doc_id,
            title=titles.get(doc_id),
            url=found[0][1] if found else None,
            urls=tuple(sorted(u for _, u in found)),
            chunks=int(chunk_counts.get(doc_id, 0)),
            images=int(image_counts.get(doc_id, 0)),
        ))
    return tuple(out)


def _images_left_unshown(conn: Connection, doc_ids: set[int]) -> tuple[ForgottenImage, ...]:
    """Images the documents show that no other document shows."""
    shown = set(_in(conn, select(document_images.c.image_id), document_images.c.document_id, doc_ids))
    still_shown = set()
    for batch in _batches(sorted(shown)):
        rows = conn.execute(select(document_images.c.image_id, document_images.c.document_id).where(document_images.c.image_id.in_(batch)))
        still_shown |= {image_id for image_id, doc_id in rows if doc_id not in doc_ids}
    rows = _rows(conn, select(images.c.id, images.c.path), images.c.id, shown - still_shown)
    return tuple(sorted((ForgottenImage(r.id, r.path) for r in rows), key=lambda i: i.id))


def _crawl_rows(conn: Connection, source_rows: list, topic_ids: set[int]) -> list[tuple[int, str]]:
    """Frontier rows that go: the forgotten pages' (by the source's URL or the URL the crawl
    asked for), image candidates found on them, and URLs only the forgotten topics proposed."""
    from indexer.prepare import canonical_url

    pages = set()
    for r in source_rows:
        pages |= {r.canonical_url, canonical_url(r.url)}
        if r.origin and _WEB.match(r.origin):
            pages.add(canonical_url(r.origin))
    found: dict[int, str] = {}
    for batch in _batches(sorted(pages)):
        found.update(conn.execute(select(crawl_urls.c.id, crawl_urls.c.url).where(crawl_urls.c.canonical_url.in_(batch))).all())
    if pages:
        images_on = select(crawl_urls.c.id, crawl_urls.c.url, crawl_urls.c.page_url).where(
            crawl_urls.c.kind == "image", crawl_urls.c.page_url.is_not(None)
        )
        found.update((i, url) for i, url, page in conn.execute(images_on) if canonical_url(page) in pages)
    if topic_ids:
        of_topics = set(conn.execute(select(crawl_url_topics.c.url_id).where(crawl_url_topics.c.topic_id.in_(topic_ids))).scalars())
        also_others = set()
        for batch in _batches(sorted(of_topics)):
            also_others |= set(conn.execute(
                select(crawl_url_topics.c.url_id).where(crawl_url_topics.c.url_id.in_(batch), crawl_url_topics.c.topic_id.not_in(topic_ids))
            ).scalars())
        found.update(_rows(conn, select(crawl_urls.c.id, crawl_urls.c.url), crawl_urls.c.id, of_topics - also_others))
    return sorted(found.items())


# -- applying ------------------------------------------------------------------------------------


def _apply(conn: Connection, store: Store, plan: ForgetPlan) -> set[str]:
    """Delete what ``plan`` names inside the caller's transaction; return the vector spaces changed."""
    doc_ids = [d.id for d in plan.documents]
    image_ids = [i.id for i in plan.images]
    changed = set()
    for space, ids in ((TEXT_SPACE, plan.chunk_ids), (CLIP_TEXT_SPACE, plan.chunk_ids), (CLIP_IMAGE_SPACE, image_ids)):
        present = sorted(_in(conn, select(embeddings.c.item_id).where(embeddings.c.space == space), embeddings.c.item_id, ids))
        if present:
            for batch in _batches(present):
                store.delete_vectors(conn, space, batch)
            changed.add(space)
    # Children first, explicitly (the foreign keys would cascade, but each delete is named
    # here so no database setting decides it); the chunks' delete trigger updates chunks_fts.
    _delete(conn, document_images, document_images.c.document_id, doc_ids)
    _delete(conn, document_images, document_images.c.image_id, image_ids)
    _delete(conn, chunks, chunks.c.document_id, doc_ids)
    _delete(conn, topic_documents, topic_documents.c.document_id, doc_ids)
    _delete(conn, sources, sources.c.id, plan._source_ids)
    # A source not selected but pointing at a forgotten document (none, by construction) would
    # be set NULL by its foreign key; a forgotten document's sources are all in the plan.
    _delete(conn, documents, documents.c.id, doc_ids)
    _delete(conn, images, images.c.id, image_ids)
    _delete(conn, crawl_url_topics, crawl_url_topics.c.url_id, plan._crawl_url_ids)
    _delete(conn, crawl_urls, crawl_urls.c.id, plan._crawl_url_ids)
    _delete(conn, topic_documents, topic_documents.c.topic_id, plan._topic_ids)
    _delete(conn, crawl_url_topics, crawl_url_topics.c.topic_id, plan._topic_ids)
    _delete(conn, crawl_topics, crawl_topics.c.topic_id, plan._topic_ids)
    _delete(conn, topics, topics.c.id, plan._topic_ids)
    return changed


def _after_commit(store: Store, plan: ForgetPlan, changed: set[str]) -> int:
    """Delete the forgotten images' files and bring the FAISS caches up to date; return the
    files deleted. A kill in here leaves garbage files (swept by the next forget) and a cache
    behind the database (caught up on next use): never an inconsistency."""
    deleted = _delete_files(store, [i.path for i in plan.images])
    _refresh_indexes(store, changed)
    return deleted


def _delete_files(store: Store, relpaths: Iterable[str]) -> int:
    """Delete image files no image row names (checked again: only garbage goes)."""
    relpaths = list(relpaths)
    if not relpaths:
        return 0
    with store.reading() as conn:
        referenced = set(_in(conn, select(images.c.path), images.c.path, relpaths))
    root = (store.root / "images").resolve()
    deleted = 0
    for relpath in relpaths:
        if relpath in referenced:
            continue
        target = (store.root / relpath).resolve()
        if root not in target.parents:
            continue  # never outside the image folder, whatever a row says
        try:
            target.unlink()
            deleted += 1
        except FileNotFoundError:
            pass
        try:
            target.parent.rmdir()  # the two-letter folder, once empty
        except OSError:
            pass
    return deleted


def _refresh_indexes(store: Store, spaces: set[str]) -> None:
    """Bring the changed spaces' FAISS caches up to date and save them (the change log says
    which ids went, so nothing is rebuilt)."""
    for space in sorted(spaces):
        dim = store.get_meta(f"dim.{space}")
        if dim is not None:
            store.index(space, int(dim))
    store.save_indexes()


# -- helpers -----------------------------------------------------------------------------------


def _orphan_files(conn: Connection, store: Store) -> tuple[str, ...]:
    """Image files (relative to the store's root) that no image row names."""
    folder = store.root / "images"
    if not folder.exists():
        return ()
    on_disk = {str(p.relative_to(store.root)) for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".tmp")}
    referenced = set(_in(conn, select(images.c.path), images.c.path, on_disk))
    return tuple(sorted(on_disk - referenced))


def _batches(items: Sequence) -> Iterator[list]:
    items = list(items)
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


def _in(conn: Connection, query, column, values: Iterable) -> list:  # noqa: ANN001 - a Select and its column
    """``query`` restricted to ``column IN values``, in batches; the first column of each row."""
    out = []
    for batch in _batches(sorted(set(values))):
        out.extend(conn.execute(query.where(column.in_(batch))).scalars())
    return out


def _rows(conn: Connection, query, column, values: Iterable) -> list:  # noqa: ANN001 - a Select and its column
    out = []
    for batch in _batches(sorted(set(values))):
        out.extend(conn.execute(query.where(column.in_(batch))).all())
    return out


def _delete(conn: Connection, table, column, values: Iterable) -> None:  # noqa: ANN001 - a Table and its column
    for batch in _batches(sorted(set(values))):
        conn.execute(delete(table).where(column.in_(batch)))


__all__ = ["ForgetPlan", "ForgetReport", "ForgottenDocument", "ForgottenImage", "KeptDocument", "Selection", "forget", "plan_forget"]
