"""Preparation: one input page read, skipped if unchanged, extracted, its images validated.

This is the CPU/I-O work that runs in a background thread while the encoders work.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

from engine.config import IndexConfig
from engine.errors import InputError
from indexer.extract import ExtractedPage, ImageRef, extract
from indexer.images import ImageData, load_image
from indexer.sources import InputFailure, PageInput


@dataclass
class PreparedPage:
    page: PageInput
    canonical_url: str
    raw_hash: str
    content_hash: str
    extracted: ExtractedPage
    images: list[tuple[ImageRef, ImageData]]
    failures: list[InputFailure] = field(default_factory=list)


@dataclass
class PageToPrepare:
    """A page read but not prepared: an executor that spreads the work (indexer/distributed)
    prepares it elsewhere. ``stored_raw_hash``: the store's hash of the page's bytes, if any."""

    page: PageInput
    stored_raw_hash: str | None


@dataclass
class UnchangedPage:
    """A page stored before from the very same bytes: nothing to do."""

    canonical_url: str
    origin: str


def canonical_url(url: str) -> str:
    """The key a source is stored under: normalised by courlan, without fragment."""
    from courlan import normalize_url

    url = url.split("#", 1)[0]
    if url.startswith(("http://", "https://")):
        try:
            return normalize_url(url, strict=False)
        except ValueError:
            return url
    return url


def prepare(
    page: PageInput,
    config: IndexConfig,
    stored_raw_hash: Callable[[str], str | None],
) -> PreparedPage | UnchangedPage:
    """Everything about ``page`` that needs no model. Raises InputError for a bad page."""
    key = canonical_url(page.url)
    raw_hash = hashlib.sha256(page.html).hexdigest()
    if stored_raw_hash(key) == raw_hash:
        return UnchangedPage(key, page.origin)
    extracted = extract(page.html, page.url, page.origin)
    content_hash = hashlib.sha256(extracted.text.encode("utf-8")).hexdigest()
    images, failures = [], []
    seen: set[str] = set()
    for ref in extracted.images:
        where = f"{ref.url} (in {page.origin})"
        try:
            data = load_image(
                _read(page, ref.src, where),
                where,
                max_pixels=config.max_image_pixels,
                max_bytes=config.max_image_bytes,
                min_side=config.min_image_side,
            )
        except InputError as exc:
            failures.append(InputFailure("image", exc.source, exc.reason))
            continue
        if data.content_hash not in seen:  # the same picture twice on one page counts once
            seen.add(data.content_hash)
            images.append((ref, data))
    page.html = b""  # extracted; free the bytes while the page waits for the encoders
    return PreparedPage(page, key, raw_hash, content_hash, extracted, images, failures)


def prepare_or_fail(
    page: PageInput, config: IndexConfig, stored_raw_hash: Callable[[str], str | None]
) -> PreparedPage | UnchangedPage | InputFailure:
    """:func:`prepare`, with a bad page turned into its failure (one bad page must not end a run)."""
    try:
        return prepare(page, config, stored_raw_hash)
    except InputError as exc:
        return InputFailure("page", page.origin, exc.reason)
    except Exception as exc:  # noqa: BLE001 - whatever a hostile page makes a parser raise
        return InputFailure("page", page.origin, f"unexpected {type(exc).__name__}: {exc}")


def _read(page: PageInput, src: str, where: str) -> bytes | None:
    try:
        return page.resolve(src)
    except OSError as exc:
        raise InputError(where, f"unreadable: {exc.strerror or exc}") from exc
    except InputError as exc:  # a resolver that fetches says why it could not (HTTP 404, timeout, ...)
        raise InputError(where, exc.reason) from exc
