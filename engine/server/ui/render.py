"""Turning the API's JSON into HTML: one autoescaping Jinja environment, and the headers every page carries.

Templates get the same dicts the /v1 routes return (``to_dict()``), so a page shows nothing its
JSON twin lacks; the few derived values (images grouped by sentence, wording shared with the
CLI) are computed here, not in templates.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from cli.render import byte_size, explain_retrieval, new_since, nothing_found
from cli.render_html import safe_href
from engine.results import AskResult

HERE = Path(__file__).parent
# Pages load only their own style sheet and the API's images; no script may run, no other site
# may frame them, and forms post only here.
CSP = "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    # Not "no-referrer": under it browsers send "Origin: null" with the UI's own form posts, which
    # the cross-site check must refuse. "same-origin" still tells other sites nothing (not even
    # the question in an answer page's URL when a source link is followed).
    "Referrer-Policy": "same-origin",
}


def http_url(url: str | None) -> str | None:
    """``url`` when it is a plain http(s) URL that may become a link; else None (shown as text)."""
    return url if url and safe_href(url) else None


def when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if stamp else "–"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value is page-derived until proven otherwise; no template uses |safe
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(http_url=http_url, when=when, size=byte_size)
    return env


TEMPLATES = _environment()


def page(template: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    """``template`` rendered with ``context``, with the security headers."""
    # Every page may show an error and refresh itself (a loading server, a running job).
    html = TEMPLATES.get_template(template).render(**{"error": None, "refresh": None, **context})
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def answer_view(result: AskResult) -> dict[str, Any]:
    """What the answer page shows: the result's JSON, its images grouped by the sentence they
    illustrate, and the CLI's wording for an empty answer and for how retrieval decided."""
    answer = result.to_dict()
    count = len(answer["summary"])
    beside: dict[int, list[dict]] = {}
    loose: list[dict] = []
    for image in answer["images"]:
        n = image["sentence"]
        if n is not None and 0 <= n < count:
            beside.setdefault(n, []).append(image)
        else:
            loose.append(image)
    return {
        "answer": answer,
        "rows": [{"number": n + 1, "sentence": s, "images": beside.get(n, [])} for n, s in enumerate(answer["summary"])],
        "loose": loose,
        "empty": None if answer["summary"] else nothing_found(result),
        "new_since": new_since(result),
        "explain": explain_retrieval(result).splitlines(),
    }
