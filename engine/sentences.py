"""Sentence splitting with ``sentencex`` (rule-based, ~300 languages, no model download)."""

from __future__ import annotations

import re


def split_sentences(text: str, language: str | None = None) -> list[tuple[str, int, int]]:
    """Sentences of ``text`` as (sentence, start, end); a sentence never spans lines.

    The extractor puts each block (paragraph, list item, table row, line break) on its own
    line, so a line break always ends a sentence.
    """
    import sentencex

    lang = (language or "en").split("-")[0].lower()
    out = []
    for paragraph in re.finditer(r"[^\n]+", text):
        cursor = paragraph.start()
        try:
            pieces = list(sentencex.segment(lang, paragraph.group()))
        except Exception:  # noqa: BLE001 - unknown language code: fall back to English rules
            pieces = list(sentencex.segment("en", paragraph.group()))
        for piece in pieces:
            stripped = piece.strip()
            if not stripped:
                continue
            start = text.find(stripped, cursor)
            if start < 0:  # segmenter normalised something; keep the text, approximate offsets
                start = cursor
            end = start + len(stripped)
            out.append((stripped, start, end))
            cursor = end
    return out
