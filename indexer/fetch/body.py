"""Reading a response body with a cap on what it decompresses to.

httpx would decompress each network chunk whole, so one chunk of a gzip bomb could
expand to tens of megabytes before any limit is checked. Bodies are read raw here and
inflated in slices of at most the bytes still allowed, so a bomb is stopped one byte past
the limit, whatever its ratio.
"""

from __future__ import annotations

import zlib

SUPPORTED_ENCODINGS = ("identity", "gzip", "x-gzip", "deflate")
ACCEPT_ENCODING = "gzip, deflate"


class BodyTooLarge(Exception):
    """The decompressed body went over the limit."""


class BadEncoding(Exception):
    """The Content-Encoding is unsupported or the compressed data is damaged."""


class BoundedDecoder:
    """Feed raw chunks, get decoded bytes; raises BodyTooLarge past ``max_bytes``."""

    def __init__(self, content_encoding: str | None, max_bytes: int):
        codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in SUPPORTED_ENCODINGS):
            raise BadEncoding(f"unsupported Content-Encoding {content_encoding!r}")
        self.coding = codings[0] if codings else "identity"
        self.max_bytes = max_bytes
        self.size = 0
        self._first = True
        self._zlib = None
        if self.coding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, raw: bytes) -> bytes:
        if self.coding == "identity":
            return self._count(raw)
        if self.coding == "deflate" and self._first:
            # "deflate" is meant to be zlib-wrapped, but some servers send it raw.
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS if _looks_zlib(raw) else -zlib.MAX_WBITS)
        self._first = False
        out = []
        data = raw
        try:
            while data:
                room = self.max_bytes - self.size + 1  # one past the limit shows it is over
                piece = self._zlib.decompress(data, room)
                out.append(self._count(piece))
                data = self._zlib.unconsumed_tail
                if self._zlib.eof:
                    break  # trailing bytes after the stream are ignored, as browsers do
        except zlib.error as exc:
            raise BadEncoding(f"damaged {self.coding} data: {exc}") from None
        return b"".join(out)

    def finish(self) -> bytes:
        if self._zlib is None:
            return b""
        try:
            return self._count(self._zlib.flush())
        except zlib.error as exc:
            raise BadEncoding(f"damaged {self.coding} data: {exc}") from None

    def _count(self, piece: bytes) -> bytes:
        self.size += len(piece)
        if self.size > self.max_bytes:
            raise BodyTooLarge(f"over the {self.max_bytes}-byte limit" + ("" if self.coding == "identity" else " after decompression"))
        return piece


def _looks_zlib(data: bytes) -> bool:
    return len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
