"""Main-content extraction with trafilatura: text, metadata, and the images in the content."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urljoin

from engine.errors import InputError

# Magic numbers of formats that are sometimes saved with an .html name.
BINARY_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a ZIP archive",
    b"\x1f\x8b": "gzip data",
}
TEXT_TAGS = {"head", "p", "list", "quote", "table", "code"}
# Inside a top-level block these start a line of their own, so that neighbouring list items,
# rows or <br>-separated lines never run together into one word ("CloudBeesRachel").
LINE_TAGS = {"head", "p", "list", "item", "quote", "table", "row", "lb", "div"}
WHITESPACE = re.compile(r"\s+")


@dataclass
class ImageRef:
    """An image the main content shows, with the text that explains it."""

    src: str  # the raw src attribute, for resolving inside the input
    url: str  # absolute URL, for provenance
    alt: str | None
    caption: str | None  # the page's figure caption
    context: str  # the paragraphs right before and after the image
    char_offset: int  # where the image sits in the document text


@dataclass
class ExtractedPage:
    text: str
    title: str | None
    author: str | None
    published: str | None
    language: str | None
    canonical_url: str | None
    images: list[ImageRef] = field(default_factory=list)


def extract(html: bytes, page_url: str, origin: str) -> ExtractedPage:
    """Extract the main content of ``html``; raise InputError when there is none."""
    from lxml import etree
    from trafilatura import bare_extraction

    _refuse_binary(html, origin)
    try:
        # No url argument: trafilatura would rewrite relative srcs, which are needed raw
        # to find the image files saved beside the page.
        doc = bare_extraction(html, include_images=True, with_metadata=True, favor_recall=True)
    except (ValueError, etree.LxmlError, UnicodeError) as exc:
        raise InputError(origin, f"unparsable HTML: {exc}") from exc
    if doc is None or doc.body is None:
        raise InputError(origin, _no_text_reason(html))

    page_tree = _parse(html)
    figures = _figure_details(page_tree)
    paragraphs: list[str] = []
    pending: list[tuple[dict, int]] = []  # graphic attributes, paragraph index before it
    for element in doc.body.iter():
        if element.tag == "graphic":
            pending.append((dict(element.attrib), len(paragraphs)))
        elif element.tag in TEXT_TAGS and _is_top_level(element):
            text = _block_text(element)
            if text:
                paragraphs.append(text)
    text = "\n\n".join(paragraphs)
    if not text.strip():
        raise InputError(origin, _no_text_reason(html))
    if _only_link_text(page_tree, text):  # favor_recall keeps a lone menu as if it were content
        raise InputError(origin, "no main text found (only navigation links)")

    starts, offset = [], 0
    for paragraph in paragraphs:
        starts.append(offset)
        offset += len(paragraph) + 2
    images = []
    seen = set()
    for attrs, before in pending:
        raw = (attrs.get("src") or "").strip()
        src = _one_url(raw)
        if not src or src in seen or src.startswith("data:"):
            continue
        seen.add(src)
        near = paragraphs[max(0, before - 1) : before + 1]
        details = figures.get(raw, {})
        images.append(
            ImageRef(
                src=src,
                url=urljoin(page_url, src),
                alt=_clean(attrs.get("alt")) or details.get("alt"),
                caption=details.get("caption") or _clean(attrs.get("title")),
                context=" ".join(" ".join(near).split()),
                char_offset=starts[before] if before < len(starts) else len(text),
            )
        )
    return ExtractedPage(
        text=text,
        title=_clean(doc.title),
        author=_clean(doc.author),
        published=_clean(doc.date),
        language=_clean(doc.language) or _html_language(html),
        canonical_url=_clean(doc.url),
        images=images,
    )


def _refuse_binary(html: bytes, origin: str) -> None:
    head = html[:16]
    for magic, kind in BINARY_MAGIC.items():
        if head.startswith(magic):
            raise InputError(origin, f"not HTML: the file is {kind}")
    if b"\x00" in html[:1024] and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(origin, "not HTML: the file holds binary data")
    if not html.strip():
        raise InputError(origin, "empty page")


def _no_text_reason(html: bytes) -> str:
    """Why no text came out: the parser gave up on tags nested too deep, or there is none."""
    import lxml.html

    parser = lxml.html.HTMLParser()
    try:
        lxml.html.fromstring(html, parser=parser)
    except Exception:  # noqa: BLE001 - only its error log matters here
        pass
    # libxml2 stops at 256 levels, so a hostile page's text is lost: say so, not "empty".
    if any("Excessive depth" in error.message for error in parser.error_log):
        return "no main text found: tags nested deeper than the parser's 256-level limit"
    if re.search(rb"<!ENTITY\s", html[:65536], re.IGNORECASE):  # a DTD's subset swallows the page
        return "no main text found: the page declares XML entities (<!ENTITY>), which the HTML parser does not read"
    return "no main text found (empty or not an article page)"


def _parse(html: bytes):  # noqa: ANN202 - lxml tree or None
    """The page as an lxml tree, for what trafilatura does not keep (captions, link text)."""
    import lxml.html

    try:
        return lxml.html.fromstring(html)
    except Exception:  # noqa: BLE001 - trafilatura parsed it; these details are a bonus
        return None


def _only_link_text(tree, text: str) -> bool:  # noqa: ANN001 - lxml tree or None
    """True when every word of ``text`` is the text of some link: a menu, not an article."""
    if tree is None:
        return False
    link_words: set[str] = set()
    for link in tree.iter("a"):
        link_words.update(re.findall(r"\w+", link.text_content().lower()))
    return set(re.findall(r"\w+", text.lower())) <= link_words


def _block_text(element) -> str:  # noqa: ANN001 - lxml element
    """The text of one top-level block: a line per list item, table row, nested block or line break.

    Whitespace inside a line is collapsed to single spaces, as HTML renders it; table cells are
    joined by " | " so that a row stays on one line.
    """
    pieces: list[str] = []
    _collect_text(element, pieces)
    lines = (" ".join(line.split()) for line in "".join(pieces).split("\n"))
    return "\n".join(line for line in lines if line)


def _collect_text(element, pieces: list[str]) -> None:  # noqa: ANN001 - lxml element
    if not isinstance(element.tag, str):  # comment or processing instruction: no text, as itertext()
        return
    if element.tag == "row":
        cells = (" ".join(_block_text(cell).split()) for cell in element)
        pieces.append("\n" + " | ".join(cell for cell in cells if cell) + "\n")
        return
    # An image between two runs of text separates them like a space would.
    edge = "\n" if element.tag in LINE_TAGS else " " if element.tag == "graphic" else ""
    pieces.append(edge)
    pieces.append(_spaces(element.text))
    for child in element:
        _collect_text(child, pieces)
        pieces.append(_spaces(child.tail))
    pieces.append(edge)


def _spaces(text: str | None) -> str:
    # A newline in the page's own text renders as a space; only the structure breaks lines.
    return WHITESPACE.sub(" ", text) if text else ""


def _is_top_level(element) -> bool:  # noqa: ANN001 - lxml element
    # Paragraphs nested in lists, quotes or tables are read with their container.
    parent = element.getparent()
    while parent is not None and parent.tag != "body":
        if parent.tag in TEXT_TAGS:
            return False
        parent = parent.getparent()
    return True


def _one_url(src: str) -> str:
    """The image URL of a src attribute; a srcset value in it ("a.jpg 1x, b.jpg 2x", as some
    sites and lazy loaders write) gives its first candidate. URLs hold no spaces, so a space
    marks a srcset; commas alone do not (image CDNs put them in paths: /w_300,h_200/a.jpg)."""
    if src.startswith("data:") or not any(c.isspace() for c in src):
        return src
    return src.split()[0].rstrip(",")


def _figure_details(tree) -> dict[str, dict[str, str | None]]:  # noqa: ANN001 - lxml tree or None
    """alt text and <figcaption> of every <img>, keyed by its raw src."""
    if tree is None:
        return {}
    details = {}
    for img in tree.iter("img"):
        src = (img.get("src") or "").strip()
        if not src:
            continue
        caption = None
        figure = next((a for a in img.iterancestors("figure")), None)
        if figure is not None:
            found = figure.find(".//figcaption")
            if found is not None:
                caption = _clean(found.text_content())
        details.setdefault(src, {"alt": _clean(img.get("alt")), "caption": caption})
    return details


def _html_language(html: bytes) -> str | None:
    match = re.search(rb"<html[^>]*\blang=[\"']?([A-Za-z]{2,3}(?:-[A-Za-z0-9]+)?)", html[:4096], re.I)
    return match.group(1).decode("ascii").lower() if match else None


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = " ".join(str(value).split())
    return value or None
