"""A self-contained HTML report of an answer: one file, inline CSS, no JavaScript at all.

Everything that came from a page (titles, URLs, sentences, alt text, captions) is
escaped; only http(s) URLs become links; a Content-Security-Policy forbids scripts,
so even a bug in escaping could not run one. Images are embedded as JPEG data URIs
(at most 512 px), or linked by file path.
"""

from __future__ import annotations

import base64
import io
import re
from html import escape
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from engine.errors import InputError
from engine.results import AskResult, ImageHit, SummarySentence
from indexer.images import read_thumbnail

# Image id → (bytes, content type), or None: images of a result from another machine.
FetchImage = Callable[[int], "tuple[bytes, str] | None"]
RASTER_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp")
THUMBNAIL_SIDE = 512  # shown at most 256 px wide: sharp on a high-density screen
# No scripts, frames, forms, fonts or fetches: images from data: URIs (or local files
# with link_images) and the inline style sheet are all the page may load.
CSP = "default-src 'none'; img-src data: file:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
# Whitespace or control characters in a URL can hide a scheme from a naive check ("java\tscript:").
UNSAFE_URL_CHARACTERS = re.compile(r"[\s\x00-\x1f\x7f]")

STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; color: #222; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
.sentence { display: flex; gap: 1rem; align-items: flex-start; border-bottom: 1px solid #eee; padding: .5rem 0; }
.sentence p { flex: 1; margin: 0; }
.cite { text-decoration: none; font-size: .85em; vertical-align: super; }
.unsupported { color: #a40; font-size: .85em; }
figure { margin: 0; max-width: 256px; font-size: .8rem; color: #555; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
.parts { font-family: ui-monospace, monospace; }
.gallery { display: flex; flex-wrap: wrap; gap: 1rem; }
.notice { background: #fff8e0; padding: .25rem .5rem; }
.url { word-break: break-all; color: #555; font-size: .85em; }
"""


def render_html(result: AskResult, link_images: bool = False, fetch_image: FetchImage | None = None) -> str:
    """The answer as one HTML document.

    Args:
        result: what ``KnowledgeBase.ask`` returned.
        link_images: refer to the stored image files by path instead of embedding them
            (a smaller file that works only on this machine).
        fetch_image: where image bytes come from when the files are on another machine
            (``engine ask --server``): image id → (bytes, content type), or None when unavailable.
    """
    by_sentence: dict[int, list[ImageHit]] = {}
    loose: list[ImageHit] = []
    for image in result.images:
        if image.sentence is not None and 0 <= image.sentence < len(result.summary):
            by_sentence.setdefault(image.sentence, []).append(image)
        else:
            loose.append(image)
    figures = {n: "".join(_figure(result, im, link_images, fetch_image) for im in hits) for n, hits in by_sentence.items()}

    body = [f"<h1>{escape(result.query)}</h1>"]
    if not result.summary:
        body.append("<p>Nothing relevant is stored for this question.</p>" if result.nothing_relevant else "<p>No answer.</p>")
    if result.style == "paragraph" and result.summary:
        spans = " ".join(f'<span id="s{n + 1}">{_sentence(s)}</span>' for n, s in enumerate(result.summary))
        body.append(f'<p class="paragraph">{spans}</p>')
        body.append(f'<div class="gallery">{"".join(figures.values())}</div>')
    else:
        for n, sentence in enumerate(result.summary):
            body.append(f'<div class="sentence" id="s{n + 1}"><p>{_sentence(sentence)}</p>{figures.get(n, "")}</div>')
    if loose:
        body.append("<h2>More images</h2>")
        body.append(f'<div class="gallery">{"".join(_figure(result, im, link_images, fetch_image) for im in loose)}</div>')
    if result.sources:
        body.append("<h2>Sources</h2><ol>")
        body.extend(_source(s) for s in result.sources)
        body.append("</ol>")
    if result.faithfulness:
        body.append(f'<p class="notice">{escape(_faithfulness(result.faithfulness))}</p>')
    body.extend(f'<p class="notice">note: {escape(n)}</p>' for n in result.notices)
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(result.query)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(body)
        + "\n</main>\n</body>\n</html>\n"
    )


def _sentence(sentence: SummarySentence) -> str:
    cites = "".join(f'<a class="cite" href="#source-{int(n)}">[{int(n)}]</a>' for n in sentence.citations)
    flag = ' <span class="unsupported">(not supported by the evidence)</span>' if sentence.supported is False else ""
    return f"{escape(sentence.text)} {cites}{flag}"


def _source(source) -> str:  # noqa: ANN001 - SourceRef
    title = escape(source.title or "untitled")
    href = safe_href(source.url)
    heading = f'<a href="{href}" rel="noopener noreferrer nofollow">{title}</a>' if href else title
    date = f" ({escape(source.published)})" if source.published else ""
    return f'<li id="source-{int(source.number)}" value="{int(source.number)}">{heading}{date}<br><span class="url">{escape(source.url)}</span></li>'


def _figure(result: AskResult, image: ImageHit, link_images: bool, fetch_image: FetchImage | None = None) -> str:
    label = image.alt or image.caption or image.generated_caption or ""
    src = _fetched_src(image, fetch_image) if fetch_image else _image_src(image.path, link_images)
    picture = (
        f'<img src="{escape(src)}" alt="{escape(label)}" loading="lazy">'
        if src
        else f'<span class="unsupported">image file unavailable: {escape(image.path)}</span>'
    )
    lines = [escape(text) for text in (image.alt, image.caption) if text]
    if image.generated_caption:
        lines.append(f"generated caption: {escape(image.generated_caption)}")
    origin = f'source <a href="#source-{int(image.source)}">[{int(image.source)}]</a>; ' if image.source else ""
    parts = ", ".join(f"{escape(str(k))} {v:.2f}" for k, v in image.parts.items())
    lines.append(f'{origin}score {image.score:.3f}<br><span class="parts">{parts}</span>')
    if result.style == "paragraph" and image.sentence is not None and image.sentence < len(result.summary):
        lines.append(f'illustrates <a href="#s{image.sentence + 1}">sentence {image.sentence + 1}</a>')
    return f'<figure>{picture}<figcaption>{"<br>".join(lines)}</figcaption></figure>'


def _image_src(path: str, link_images: bool) -> str | None:
    """A data: URI of a JPEG thumbnail, or the file's file: URI; None when the file cannot be read."""
    if link_images:
        return Path(path).resolve().as_uri()
    try:
        picture = read_thumbnail(Path(path), THUMBNAIL_SIDE)
    except InputError:
        return None
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _fetched_src(image: ImageHit, fetch_image: FetchImage) -> str | None:
    fetched = fetch_image(image.image_id)
    if fetched is None:
        return None
    data, content_type = fetched
    if content_type not in RASTER_TYPES:  # an SVG could carry script: never inline one
        return None
    return f"data:{content_type};base64," + base64.b64encode(data).decode("ascii")


def safe_href(url: str) -> str | None:
    """``url`` escaped for an href when it is a plain http(s) URL; else None (shown as text only)."""
    if not url or UNSAFE_URL_CHARACTERS.search(url):
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return escape(url, quote=True)


def _faithfulness(report: dict) -> str:
    generated = report.get("generated", 0)
    unsupported = report.get("dropped", 0) + report.get("marked", 0)
    what = "dropped" if report.get("dropped") else "marked"
    return (
        f"abstractive summary: {generated - unsupported} of {generated} generated sentences are supported by the "
        f"evidence they cite" + (f"; {unsupported} {what}" if unsupported else "")
    )
