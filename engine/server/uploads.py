"""Uploaded saved pages and web archives: a bounded body, checked by name and content, stored under the store."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Message

# Longest first, so "x.warc.gz" is a gzipped WARC and not a ".gz".
UPLOAD_SUFFIXES = (".warc.gz", ".arc.gz", ".html", ".htm", ".warc", ".arc")
SNIFF_BYTES = 64 * 1024
HTML_TAG = re.compile(rb"<(?:!doctype\s+html|html|head|body)[\s>]", re.IGNORECASE)
ARCHIVE_MAGIC = {".warc": b"WARC/", ".arc": b"filedesc://"}
ARCHIVE_KIND = {".warc": "a WARC file", ".arc": "an ARC file"}
GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
MAX_NAME_CHARS = 100


class UploadRejected(ValueError):
    """An uploaded file that is not what its name says, or has a name we do not take."""


@dataclass(frozen=True)
class Upload:
    """One uploaded file as the client named it, readable from its start."""

    name: str
    file: BinaryIO


def limited(request: Request, max_bytes: int) -> Request:
    """``request`` whose body reads fail with 413 past ``max_bytes``: the declared
    Content-Length is checked now, then the bytes are counted as they arrive (a client
    may send no length, or a false one)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes, f"announces {declared} bytes, which is")
    seen = 0

    async def receive() -> Message:
        nonlocal seen
        message = await request.receive()
        seen += len(message.get("body", b""))
        if seen > max_bytes:
            raise _too_large(max_bytes, "is")
        return message

    return Request(request.scope, receive)


def _too_large(max_bytes: int, what: str) -> HTTPException:
    return HTTPException(413, f"the request body {what} over the {max_bytes}-byte limit (serve.max_upload_bytes)")


def upload_suffix(name: str) -> str:
    """The accepted suffix ``name`` ends with, lowercased.

    Raises:
        UploadRejected: for any other name.
    """
    lowered = name.lower()
    for suffix in UPLOAD_SUFFIXES:
        if lowered.endswith(suffix) and len(lowered) > len(suffix):
            return suffix
    raise UploadRejected(f"{name!r} is not a saved page or web archive: the name must end with {', '.join(UPLOAD_SUFFIXES)}")


def check_content(name: str, suffix: str, head: bytes) -> None:
    """Refuse a file whose first bytes are not what ``suffix`` promises (an extension alone proves nothing)."""
    if suffix in (".html", ".htm"):
        text = head.removeprefix(UTF8_BOM).lstrip()
        if not text.startswith(b"<") or not HTML_TAG.search(text):
            raise UploadRejected(f"{name!r} is not HTML: it must begin with '<' and hold an <html>, <head> or <body> tag")
        return
    base = suffix.removesuffix(".gz")
    if suffix.endswith(".gz"):
        if not head.startswith(GZIP_MAGIC):
            raise UploadRejected(f"{name!r} is not gzip-compressed")
        try:
            head = zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(head, len(ARCHIVE_MAGIC[base]))
        except zlib.error as exc:
            raise UploadRejected(f"{name!r} is not a readable gzip file: {exc}") from None
    if not head.startswith(ARCHIVE_MAGIC[base]):
        raise UploadRejected(f"{name!r} is not {ARCHIVE_KIND[base]}: it must begin with {ARCHIVE_MAGIC[base].decode()!r}")


def safe_name(name: str, suffix: str) -> str:
    """A file name made of letters, digits, '.', '_' and '-', from the last part of the client's name:
    never a folder, never hidden, never too long."""
    base = re.split(r"[\\/]", name)[-1]
    stem = base[: len(base) - len(suffix)]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:MAX_NAME_CHARS]
    return (stem or "upload") + suffix


def check_uploads(uploads: list[Upload]) -> list[str]:
    """The suffix of each upload, once every one has passed its name and content checks.

    Raises:
        UploadRejected: naming the first file that fails.
    """
    if not uploads:
        raise UploadRejected("no file uploaded: send one or more 'files' fields")
    suffixes = []
    for upload in uploads:
        suffix = upload_suffix(upload.name)
        head = upload.file.read(SNIFF_BYTES)
        upload.file.seek(0)
        check_content(upload.name, suffix, head)
        suffixes.append(suffix)
    return suffixes


def store_uploads(store_root: Path, uploads: list[Upload]) -> list[Path]:
    """Check every upload, then copy each to ``<store>/uploads/<sha256 prefix>/<safe name>``.

    Nothing is written unless all pass. Returns the stored paths, in order.

    Raises:
        UploadRejected: a file failed its checks (nothing was stored).
    """
    suffixes = check_uploads(uploads)
    folder = Path(store_root) / "uploads"
    return [_store(folder, upload, suffix) for upload, suffix in zip(uploads, suffixes)]


def _store(folder: Path, upload: Upload, suffix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    # Written to a temporary file beside the target, then renamed: no half file under a final name.
    fd, temp_name = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := upload.file.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        target = folder / digest.hexdigest()[:16] / safe_name(upload.name, suffix)
        target.parent.mkdir(exist_ok=True)
        os.replace(temp_name, target)
        return target
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
