"""Inputs: folders of saved pages, single HTML files, and WARC/ARC archives.

Each yields :class:`PageInput` (a page plus a way to get the images it references
from the same input) or :class:`InputFailure` (what could not be read, and why).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator
from urllib.parse import unquote, urljoin, urlsplit

if TYPE_CHECKING:
    from sqlalchemy import Connection

HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
ARCHIVE_SUFFIXES = (".warc", ".warc.gz", ".arc", ".arc.gz")
HTML_TYPES = ("text/html", "application/xhtml+xml")
# Browsers stamp saved pages with their origin: <!-- saved from url=(0045)https://... -->
SAVED_FROM = re.compile(rb"<!--\s*saved from url=\(\d+\)(\S+?)\s*-->", re.IGNORECASE)


@dataclass
class PageInput:
    """One page to index."""

    url: str  # where the page came from: its web URL when known, else a file:// URI
    origin: str  # where it was read here: a path, or "archive.warc.gz@offset"
    html: bytes
    # Reads a resource the page references, by its raw src attribute; None if absent.
    resolve: Callable[[str], bytes | None]
    fetched_at: float | None = None
    http_status: int | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Run by the writer inside the page's own transaction (a crawl marks its URL fetched).
    on_commit: Callable[[Connection], None] | None = None


@dataclass
class InputFailure:
    """An input that could not be used at all."""

    kind: str  # page | image | archive
    origin: str
    reason: str


Item = PageInput | InputFailure


@dataclass(frozen=True)
class Limits:
    page_bytes: int
    resource_bytes: int


def iter_inputs(paths: list[Path], limits: Limits) -> Iterator[Item]:
    """Every page under ``paths``, in a stable order, with failures in between."""
    for path in paths:
        path = Path(path)
        if not path.exists():
            yield InputFailure("page", str(path), "no such file or folder")
        elif path.is_dir():
            yield from _folder(path, limits)
        elif path.name.lower().endswith(ARCHIVE_SUFFIXES):
            yield from _archive(path, limits)
        elif path.suffix.lower() in HTML_SUFFIXES:
            yield _html_file(path, path.parent, limits)
        else:
            yield InputFailure("page", str(path), "not an HTML file, a folder or a WARC/ARC archive")


def count_pages(paths: list[Path]) -> int:
    """How many HTML files and archives ``paths`` hold (for progress; archives count once)."""
    total = 0
    for path in map(Path, paths):
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = [d for d in dirnames if not d.endswith("_files")]
                total += sum(
                    1 for n in filenames if Path(n).suffix.lower() in HTML_SUFFIXES or n.lower().endswith(ARCHIVE_SUFFIXES)
                )
        else:
            total += 1
    return total


def _folder(root: Path, limits: Limits) -> Iterator[Item]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        # A browser's "<page>_files" folder holds that page's resources (iframes too), not pages.
        dirnames[:] = [d for d in dirnames if not d.endswith("_files")]
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.suffix.lower() in HTML_SUFFIXES:
                yield _html_file(path, root, limits)
            elif name.lower().endswith(ARCHIVE_SUFFIXES):
                yield from _archive(path, limits)


def _html_file(path: Path, root: Path, limits: Limits) -> Item:
    try:
        size = path.stat().st_size
        if size > limits.page_bytes:
            return InputFailure("page", str(path), f"{size} bytes is over the {limits.page_bytes}-byte page limit")
        html = path.read_bytes()
    except OSError as exc:
        return InputFailure("page", str(path), f"unreadable: {exc.strerror or exc}")
    saved_from = SAVED_FROM.search(html[:4096])
    url = saved_from.group(1).decode("ascii", "replace") if saved_from else ""
    # The comment is the page's own text: only a web address may become its source URL (a
    # "javascript:" or "file:" one would be stored and shown as the citation link).
    if not url.lower().startswith(("http://", "https://")):
        url = path.resolve().as_uri()
    return PageInput(
        url=url,
        origin=str(path),
        html=html,
        resolve=_local_resolver(path.parent, root, limits.resource_bytes),
        fetched_at=path.stat().st_mtime,
    )


def _local_resolver(page_dir: Path, root: Path, max_bytes: int) -> Callable[[str], bytes | None]:
    """Resolve a src against the page's folder, refusing anything outside ``root``."""
    root = root.resolve()

    def resolve(src: str) -> bytes | None:
        parts = urlsplit(src)
        if parts.scheme in ("http", "https", "data") or parts.netloc:
            return None  # not saved beside the page
        candidate = (page_dir / unquote(parts.path)).resolve()
        if not candidate.is_relative_to(root) or not candidate.is_file():
            return None
        with open(candidate, "rb") as f:
            return f.read(max_bytes + 1)  # one byte over tells the validator it is too big

    return resolve


def _archive(path: Path, limits: Limits) -> Iterator[Item]:
    """Pages of a WARC/ARC file; their images are read from the same archive."""
    from warcio.archiveiterator import ArchiveIterator

    pages: list[tuple[int, str, dict]] = []
    refused = 0  # failures yielded while reading: an archive without pages has said why already
    resources: dict[str, int] = {}
    damaged: dict[str, str] = {}  # resource URL -> why its record cannot be used
    try:
        with open(path, "rb") as f:
            records = ArchiveIterator(f, arc2warc=True)
            for record in records:
                if record.rec_type not in ("response", "resource"):
                    continue
                uri = record.rec_headers.get_header("WARC-Target-URI") or ""
                offset = records.get_record_offset()  # reads the record to its end
                info = _record_info(record)
                is_page = info["status"] in (None, 200) and info["content_type"].startswith(HTML_TYPES)
                # warcio ends quietly at a cut: a record whose declared bytes are not all there
                # would be stored as a partial page or image, so it is refused with its reason.
                truncated = _truncation(record, uri)
                if truncated:
                    refused += 1
                    yield InputFailure("page" if is_page else "archive", f"{path}@{offset}", truncated)
                    damaged.setdefault(_strip_fragment(uri), truncated)
                    continue
                resources.setdefault(_strip_fragment(uri), offset)
                if is_page:
                    pages.append((offset, uri, info))
    except Exception as exc:  # noqa: BLE001 - warcio raises many kinds on damaged files
        # warcio quotes the offending line whole: a binary file would make a huge reason.
        # Its messages are indented, multi-line text: one line, so the reason reads in a log.
        message = " ".join(str(exc).split())[:200]
        yield InputFailure("archive", str(path), f"unreadable after {len(resources)} records: {message}")
        refused += 1
    if not pages and not refused:
        # An empty or damaged archive (or one whose HTTP headers do not parse) must not pass in silence.
        yield InputFailure(
            "archive", str(path),
            f"no HTML page in the archive ({len(resources)} readable response or resource records, "
            "none of them an HTML page)",
        )

    def resolve_in(page_url: str) -> Callable[[str], bytes | None]:
        def resolve(src: str) -> bytes | None:
            url = _strip_fragment(urljoin(page_url, src))
            offset = resources.get(url)
            if offset is None and url in damaged:
                raise OSError(damaged[url])
            return None if offset is None else _payload(path, offset, limits.resource_bytes)

        return resolve

    for offset, uri, info in pages:
        origin = f"{path}@{offset}"
        try:
            html = _payload(path, offset, limits.page_bytes)
        except Exception as exc:  # noqa: BLE001
            yield InputFailure("page", origin, f"unreadable archive record: {exc}")
            continue
        if len(html) > limits.page_bytes:
            yield InputFailure("page", origin, f"over the {limits.page_bytes}-byte page limit")
            continue
        yield PageInput(
            url=uri,
            origin=origin,
            html=html,
            resolve=resolve_in(uri),
            fetched_at=info["date"],
            http_status=info["status"],
            content_type=info["content_type"],
        )


def _truncation(record, uri: str) -> str | None:  # noqa: ANN001 - warcio ArcWarcRecord, read to its end
    """Why a record read to its end is incomplete (the archive was cut in it), or None."""
    if record.length is None:
        return f"damaged archive record {uri}: its header has no Content-Length (the archive is cut there)"
    missing = getattr(record.raw_stream, "limit", 0)
    if missing > 0:
        return f"truncated archive record {uri}: {missing} of its {record.length} bytes are missing"
    return None


def _record_info(record) -> dict:  # noqa: ANN001 - warcio ArcWarcRecord
    headers = record.http_headers
    status = None
    content_type = ""
    if headers is not None:
        try:
            status = int(headers.get_statuscode())
        except (TypeError, ValueError):
            status = None
        content_type = (headers.get_header("Content-Type") or "").lower()
    if not content_type:
        content_type = (record.rec_headers.get_header("Content-Type") or "").lower()
    date = None
    stamp = record.rec_headers.get_header("WARC-Date")
    if stamp:
        try:
            date = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            date = None
    return {"status": status, "content_type": content_type, "date": date}


def _payload(path: Path, offset: int, limit: int) -> bytes:
    """The decoded HTTP body of the record at ``offset``: at most ``limit`` + 1 bytes,
    so a caller sees that it is over the limit without reading all of it."""
    from warcio.archiveiterator import ArchiveIterator

    with open(path, "rb") as f:
        f.seek(offset)
        record = next(iter(ArchiveIterator(f, arc2warc=True)))
        return record.content_stream().read(limit + 1)


def _strip_fragment(url: str) -> str:
    return url.split("#", 1)[0]
