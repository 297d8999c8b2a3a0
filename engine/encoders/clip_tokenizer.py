"""CLIP's tokenizer without torch: open_clip's SimpleTokenizer rebuilt on Hugging Face ``tokenizers``.

open_clip cleans a text (``ftfy.fix_text``, HTML unescaping twice, whitespace, lower case), splits it
with a regex and applies byte-level BPE with an end-of-word suffix. At export time, with open_clip
and ftfy at hand, :func:`build` writes the same vocabulary, merges and split as a tokenizer.json,
and ftfy's character tables as data; :class:`ClipTokenizer` then needs only ``tokenizers`` and the
standard library, and gives open_clip's ids.

Three differences, all rare in real text (tests/test_onnx_clip.py shows each; 20,000 random strings
of mixed scripts, controls and entities turned up no other):

- ftfy's mojibake repair (``fix_encoding``: "cafÃ©" read back as "café") is a heuristic over
  ftfy's own tables of likely mis-decodings; it is not reproduced, so such text keeps its
  mojibake and tokenizes as written. Every other default ftfy fix is applied, from ftfy's tables.
- The strings ``<start_of_text>`` / ``<end_of_text>`` written inside a text become special tokens
  wherever they occur; open_clip's regex finds them only where no punctuation run swallows the
  ``<`` (so "a<<end_of_text>" differs).
- The split regex runs on Oniguruma here and on the ``regex`` module there, whose Unicode tables
  are newer: about 17,500 code points unassigned in Python 3.11's Unicode 14 data — characters
  added in Unicode 15-17 such as CJK Extension J (U+323B0-U+33479) and Garay — count as letters
  or digits there and not here; so does U+0345 (combining ypogegrammeni) under ``regex``'s
  case-insensitive match.
"""

from __future__ import annotations

import html
import re
import unicodedata
from pathlib import Path

# ftfy.fix_text cuts a text without line breaks into pieces of this many characters.
FTFY_MAX_SEGMENT = 1_000_000
_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class ClipTokenizer:
    """open_clip's token ids from an exported tokenizer.json and ftfy tables (see :func:`build`).

    Args:
        path: the tokenizer.json written by :func:`build`.
        cleanup: the ftfy tables :func:`build` returned.
        context_length: tokens CLIP reads, start and end markers included (77).
    """

    def __init__(self, path: Path, cleanup: dict, context_length: int):
        from tokenizers import Tokenizer

        self.context_length = context_length
        self._encoder = Tokenizer.from_file(str(path))
        self._encoder.no_padding()
        self._encoder.enable_truncation(context_length)
        self._counter = Tokenizer.from_file(str(path))
        self._counter.no_truncation()
        self._counter.no_padding()
        self._entity = re.compile(cleanup["entity_pattern"])
        self._entities = cleanup["entities"]
        self._ansi = re.compile(cleanup["ansi_pattern"])
        self._chars = str.maketrans(cleanup["chars"])
        self._controls = dict.fromkeys(map(ord, cleanup["controls"]))

    def ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's ids as open_clip's tokenizer gives them, unpadded: start, text, end; cut to
        ``context_length`` with the end marker kept."""
        return [e.ids for e in self._encoder.encode_batch([self.clean(t) for t in texts])]

    def count(self, texts: list[str]) -> list[int]:
        """Tokens of each text without markers and uncut (open_clip's ``len(tokenizer.encode(text))``)."""
        encoded = self._counter.encode_batch([self.clean(t) for t in texts], add_special_tokens=False)
        return [len(e.ids) for e in encoded]

    def clean(self, text: str) -> str:
        """open_clip's ``_clean_lower``: ftfy (less mojibake repair), HTML unescaped twice, whitespace, lower case."""
        text = html.unescape(html.unescape(self._ftfy(text))).strip()
        return " ".join(text.split()).lower()

    def _ftfy(self, text: str) -> str:
        # As ftfy.fix_text: line by line, HTML entities decoded until a line holds "<" (and, as
        # ftfy's loop reassigns its config, in no later line either).
        out, unescape, start = [], True, 0
        while start < len(text):
            end = text.find("\n", start) + 1 or len(text)
            end = min(end, start + FTFY_MAX_SEGMENT)
            segment = text[start:end]
            unescape = unescape and "<" not in segment
            out.append(self._fix_segment(segment, unescape))
            start = end
        return "".join(out)

    def _fix_segment(self, text: str, unescape: bool) -> str:
        # ftfy.fix_and_explain's steps in its order, repeated until nothing changes.
        while True:
            before = text
            if unescape:
                text = self._entity.sub(self._entity_fixup, text)
            text = text.translate(self._chars)  # C1 controls, ligatures, width, curly quotes
            for old in ("\r\n", "\r", "\u2028", "\u2029", "\x85"):
                text = text.replace(old, "\n")
            if _SURROGATE.search(text):
                text = _SURROGATE.sub("\ufffd", _SURROGATE_PAIR.sub(_join_surrogates, text))
            text = self._ansi.sub("", text)
            text = unicodedata.normalize("NFC", text.translate(self._controls))
            if text == before:
                return text

    def _entity_fixup(self, match: re.Match) -> str:
        # ftfy.fixes._unescape_fixup: known names (and their upper-case forms), whole numeric references.
        entity = match.group(0)
        if entity in self._entities:
            return self._entities[entity]
        if entity.startswith("&#"):
            decoded = html.unescape(entity)
            return entity if ";" in decoded else decoded
        return entity


def _join_surrogates(match: re.Match) -> str:
    high, low = match.group(0)
    return chr(0x10000 + (ord(high) - 0xD800) * 0x400 + (ord(low) - 0xDC00))


def build(tokenizer, out: Path) -> dict:  # noqa: ANN001 - open_clip.tokenizer.SimpleTokenizer
    """Write open_clip's ``tokenizer`` as a tokenizer.json at ``out``; return ftfy's tables for
    :class:`ClipTokenizer` (JSON-serialisable).

    Raises:
        ValueError: a tokenizer this module cannot reproduce (another cleaner, a reduction mode,
            another split pattern).
    """
    from open_clip.tokenizer import SimpleTokenizer, _clean_lower
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors

    if type(tokenizer) is not SimpleTokenizer or tokenizer.clean_fn is not _clean_lower or tokenizer.reduction_fn:
        raise ValueError(f"{type(tokenizer).__name__} is not open_clip's default lower-case SimpleTokenizer")
    specials = [tokenizer.decoder[i] for i in tokenizer.all_special_ids]
    prefix = "|".join(specials) + "|"
    if not tokenizer.pat.pattern.startswith(prefix) or not tokenizer.pat.flags & re.IGNORECASE:
        raise ValueError(f"unexpected split pattern {tokenizer.pat.pattern!r}")
    merges = sorted(tokenizer.bpe_ranks, key=tokenizer.bpe_ranks.get)
    bpe = models.BPE(
        vocab=dict(tokenizer.encoder), merges=merges, end_of_word_suffix="</w>", continuing_subword_prefix=""
    )
    built = Tokenizer(bpe)
    built.add_special_tokens(specials)
    # No normalizer: text arrives as ClipTokenizer.clean leaves it, lower-cased by Python's str.lower
    # as open_clip does (the Rust one follows a newer Unicode: Garay capitals, for one, differ).
    built.pre_tokenizer = pre_tokenizers.Sequence([
        # Keep the regex's matches (open_clip's re.findall), dropping what lies between them.
        pre_tokenizers.Split(Regex("(?i)" + tokenizer.pat.pattern[len(prefix):]), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    start, end = tokenizer.sot_token_id, tokenizer.eot_token_id
    built.post_processor = processors.TemplateProcessing(
        single=f"{specials[0]} $A {specials[1]}", special_tokens=[(specials[0], start), (specials[1], end)]
    )
    built.save(str(out))
    return _ftfy_tables()


def _ftfy_tables() -> dict:
    """ftfy's per-character fixes and HTML entities, taken from ftfy itself so they match its version."""
    import ftfy
    from ftfy import chardata, fixes

    everything = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and c != 0x0A]
    # The per-character fixers, run in fix_text's order over every character at once ("\n" keeps
    # them apart: none of these touches it).
    fixed = "\n".join(everything)
    for fixer in (fixes.fix_c1_controls, fixes.fix_latin_ligatures, fixes.fix_character_width, fixes.uncurl_quotes):
        fixed = fixer(fixed)
    chars = {c: f for c, f in zip(everything, fixed.split("\n")) if f != c}
    kept = fixes.remove_control_chars("\n".join(everything)).split("\n")
    controls = "".join(c for c, k in zip(everything, kept) if not k)
    return {
        "ftfy": ftfy.__version__,
        "entity_pattern": chardata.HTML_ENTITY_RE.pattern,
        "entities": chardata.HTML_ENTITIES,
        "ansi_pattern": fixes.ANSI_RE.pattern,
        "chars": chars,
        "controls": controls,
    }

