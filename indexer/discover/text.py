"""Small text helpers shared by providers: markup to plain text, URL checks, topic matching."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

_WORD = re.compile(r"\w+")
# Shorter shared prefixes ("car" in "carbon") match too much to count as the same word.
_MIN_STEM = 4
# Question words and glue that would match nearly every entry of a feed.
_STOPWORDS = frozenset({
    "the", "and", "for", "how", "what", "why", "who", "when", "where", "which", "with", "from",
    "are", "was", "were", "does", "did", "into", "about", "this", "that", "its", "than",
    "then", "there", "their",
})


def plain_text(fragment: str | None) -> str | None:
    """Text of an HTML fragment (search snippets carry <b>, <span class="searchmatch">, entities)."""
    if not fragment or not fragment.strip():
        return None
    from lxml import html

    text = html.fragment_fromstring(fragment, create_parent="div").text_content()
    return " ".join(text.split()) or None


def web_url(value: object, base: str | None = None) -> str | None:
    """``value`` as an absolute http(s) URL (resolved against ``base``), else None."""
    if not isinstance(value, str) or not value.strip():
        return None
    url = urljoin(base, value.strip()) if base else value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return url


def topic_terms(topic: str) -> list[str]:
    """The words of a topic worth matching: lowercased; short words and stopwords dropped
    unless nothing else is left."""
    words = [w.lower() for w in _WORD.findall(topic)]
    long_words = [w for w in words if len(w) >= 3 and w not in _STOPWORDS]
    return list(dict.fromkeys(long_words or words))


def url_words(url: str) -> str:
    """The part of a URL that says what the page is about: its path (the host says who)."""
    return urlsplit(url).path


def topic_score(terms: list[str], *texts: str | None) -> int:
    """How many topic terms occur in the texts, as whole words or sharing a 4+ letter stem
    ("roast" matches "roasting"); a URL path's words are split on its punctuation."""
    words = {w.lower() for text in texts if text for w in _WORD.findall(text.replace("_", " "))}
    return sum(1 for term in terms if any(_same_word(term, word) for word in words))


def _same_word(term: str, word: str) -> bool:
    if term == word:
        return True
    shorter, longer = sorted((term, word), key=len)
    return len(shorter) >= _MIN_STEM and longer.startswith(shorter)
