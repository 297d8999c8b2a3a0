"""Stored image files over HTTP: content types, year-long caching by content hash, thumbnails, no inline SVG."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from typing import Callable

from fastapi import Response
from fastapi.responses import FileResponse

from engine.documents import StoredImage

THUMBNAIL_SIDE = 320  # shown at most 160 px wide in the UI: sharp on a high-density screen
THUMBNAIL_CACHE_BYTES = 32 * 1024 * 1024  # some 2,000 thumbnails of ~15 KB
# The raster formats the indexer stores (indexer/images.py ALLOWED_FORMATS); anything else
# (an SVG, say) did not come from it and is only ever a download.
MEDIA_TYPES = {
    "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp", "bmp": "image/bmp", "tiff": "image/tiff",
}
SHOWN = {"jpeg", "png", "gif", "webp", "bmp"}  # what an <img> shows as it is: a small one is its own thumbnail
HEADERS = {
    # Named by content hash, so a URL's bytes never change.
    "Cache-Control": "public, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
    # Opened as a page (not an <img>), a file runs nothing: what makes an SVG's scripts harmless.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
}


class ThumbnailCache:
    """Thumbnails made recently, by content hash, up to ``max_bytes`` in all; the least recently used go first.

    Why memory and not files under the store: the server only reads the store (another
    process may be writing it, and ``engine check`` counts every file under images/), a
    thumbnail takes milliseconds to make, and clients keep each for a year, so a restart
    costs little.
    """

    def __init__(self, max_bytes: int = THUMBNAIL_CACHE_BYTES):
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()  # routes run in FastAPI's threadpool

    def get(self, key: str, make: Callable[[], bytes]) -> bytes:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        data = make()  # outside the lock: two requests may make the same one, never wait on each other
        with self._lock:
            if key not in self._items and len(data) <= self.max_bytes:
                self._items[key] = data
                self._size += len(data)
                while self._size > self.max_bytes:
                    self._size -= len(self._items.popitem(last=False)[1])
        return data


def image_response(image: StoredImage, thumb: bool, if_none_match: str | None, thumbnails: ThumbnailCache) -> Response:
    """The file of ``image`` (its file exists), or a JPEG of at most THUMBNAIL_SIDE px when ``thumb``.

    A format that is not one the indexer stores (SVG above all: from our origin, its
    scripts would run) is served full size as a download, whatever ``thumb`` asks.
    """
    raster = image.format in MEDIA_TYPES
    made = thumb and raster and (image.format not in SHOWN or max(image.width, image.height) > THUMBNAIL_SIDE)
    etag = f'"{image.content_hash}-{THUMBNAIL_SIDE}"' if made else f'"{image.content_hash}"'
    headers = {**HEADERS, "ETag": etag}
    if if_none_match and _matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    if made:
        return Response(thumbnails.get(etag, lambda: _thumbnail(image)), media_type="image/jpeg", headers=headers)
    if raster:
        return FileResponse(image.path, media_type=MEDIA_TYPES[image.format], headers=headers)
    return FileResponse(
        image.path,
        media_type="image/svg+xml" if image.format == "svg" else "application/octet-stream",
        headers=headers,
        filename=f"{image.content_hash}.{image.format}",  # Content-Disposition: attachment
    )


def _thumbnail(image: StoredImage) -> bytes:
    from indexer.images import read_thumbnail  # the one decode indexing and reports use

    buffer = io.BytesIO()
    read_thumbnail(image.path, THUMBNAIL_SIDE).save(buffer, "JPEG", quality=85, optimize=True)
    return buffer.getvalue()


def _matches(if_none_match: str, etag: str) -> bool:
    """Whether an If-None-Match header names ``etag`` (weakly compared, as RFC 9110 asks for GET)."""
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags
