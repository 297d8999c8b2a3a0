"""What a body really is, from its first bytes, and whether that fits what was asked for."""

from __future__ import annotations

HTML_TYPES = ("text/html", "application/xhtml+xml")
# Declared types that can never be a page: refused before the body is read.
NEVER_A_PAGE = ("image/", "audio/", "video/", "font/", "application/pdf", "application/zip", "application/gzip")
MAGIC = (
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "gzip data"),
)
# Root elements of the listings a --from URL may be (their entries are indexed as pages).
LISTING_ROOTS = ((b"<urlset", "sitemap"), (b"<sitemapindex", "sitemap"), (b"<rss", "feed"), (b"<feed", "feed"), (b"<rdf:rdf", "feed"))
HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<title", b"<meta", b"<div", b"<p>", b"<article")


def media_type(content_type: str | None) -> str:
    """``text/html; charset=utf-8`` → ``text/html``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def sniff(head: bytes) -> str | None:
    """A description of ``head``'s format ("a JPEG image", "HTML"), or None if unknown."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    for magic, what in MAGIC:
        if head.startswith(magic):
            return what
    text = head[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if any(marker in text for marker in HTML_MARKERS):
        return "HTML"
    return None


def is_image(what: str | None) -> bool:
    return bool(what) and what.endswith("image")


def page_refusal_by_type(declared: str) -> str | None:
    """Why a page whose Content-Type is ``declared`` is refused before reading it."""
    if declared.startswith(NEVER_A_PAGE):
        return f"not an HTML page: Content-Type {declared}"
    return None


def page_refusal(declared: str, head: bytes) -> str | None:
    """Why a page body is refused: declared HTML but binary, or neither declared nor sniffed HTML."""
    found = sniff(head)
    if declared in HTML_TYPES:
        if found not in (None, "HTML"):
            return f"wrong content type: declared {declared} but the body is {found}"
        return None
    if found == "HTML":
        return None  # e.g. text/plain or application/octet-stream from a misconfigured server
    return f"not an HTML page: Content-Type {declared or 'missing'}" + (f", body is {found}" if found else "")


def image_refusal(declared: str, head: bytes) -> str | None:
    """Why an image body is refused. Pillow validates the rest (format, size, truncation)."""
    found = sniff(head)
    if is_image(found):
        return None
    if found == "HTML" or declared in HTML_TYPES:
        return f"not an image: the URL serves HTML (Content-Type {declared or 'missing'})"
    if declared.startswith("image/"):
        return None  # a format sniffing does not know; Pillow decides
    return f"not an image: Content-Type {declared or 'missing'}" + (f", body is {found}" if found else "")


def listing_kind(head: bytes) -> str | None:
    """"sitemap" or "feed" when ``head`` starts an XML sitemap (gzipped or not) or an RSS/Atom feed.

    Checked before HTML: a feed's entries carry <title> and escaped markup that look like a page.
    """
    if head.startswith(b"\x1f\x8b"):
        return "sitemap"  # sitemap.xml.gz; parse_sitemap refuses it if it is not one
    text = head[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<?xml") or text.startswith(b"<"):
        found = [(text.find(root), kind) for root, kind in LISTING_ROOTS if root in text]
        if found and not text.startswith(b"<!doctype html") and not text.startswith(b"<html"):
            return min(found)[1]
    return None


def input_refusal(declared: str, head: bytes) -> str | None:
    """Why a --from URL's body is refused: it must be an HTML page, a feed or a sitemap."""
    if listing_kind(head):
        return None
    refusal = page_refusal(declared, head)
    return refusal and refusal.replace("not an HTML page", "not an HTML page, RSS/Atom feed or sitemap", 1)
