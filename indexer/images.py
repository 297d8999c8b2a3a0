"""Image validation: real format, size and pixel limits, complete data; the one thumbnail decode
that indexing, reindexing and reports share; hashing."""

from __future__ import annotations

import hashlib
import io
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from engine.errors import InputError

ALLOWED_FORMATS = {"JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"}
# CLIP looks at 224 px; decoding larger than this only costs time and memory.
THUMBNAIL_SIDE = 448


@dataclass
class ImageData:
    content_hash: str
    data: bytes
    width: int
    height: int
    format: str  # lower-case Pillow format name: jpeg, png, ...
    thumbnail: object  # PIL.Image in RGB, at most THUMBNAIL_SIDE on its longer side
    phash: str  # 64-bit perceptual hash, hex (see engine.near_duplicates)


def load_image(data: bytes | None, source: str, max_pixels: int, max_bytes: int, min_side: int) -> ImageData:
    """Validate image bytes and decode a thumbnail; raise InputError naming ``source``."""
    from PIL import Image

    if data is None:
        raise InputError(source, "not found in the input")
    if len(data) > max_bytes:
        raise InputError(source, f"over the {max_bytes}-byte image limit")
    if not data:
        raise InputError(source, "empty file")
    with _decoding(source):
        image = Image.open(io.BytesIO(data))
        fmt = image.format or "?"
        if fmt not in ALLOWED_FORMATS:
            raise InputError(source, f"unsupported image format {fmt}")
        width, height = image.size
        if width * height > max_pixels:
            raise InputError(source, f"{width}x{height} is over the {max_pixels}-pixel limit")
        if min(width, height) < min_side:
            raise InputError(source, f"{width}x{height} is smaller than {min_side} px (an icon or spacer)")
        thumbnail = _thumbnail(image, THUMBNAIL_SIDE)
    return ImageData(
        content_hash=hashlib.sha256(data).hexdigest(),
        data=data,
        width=width,
        height=height,
        format=fmt.lower(),
        thumbnail=thumbnail,
        phash=perceptual_hash(thumbnail),
    )


def read_thumbnail(path: Path, side: int = THUMBNAIL_SIDE):  # noqa: ANN201 - PIL image
    """A stored image file decoded exactly as ``load_image`` decoded it at index time.

    Reindexing, hashing, captioning and reports all use this, so a stored image gets the
    same CLIP vector, hash and caption as when it was indexed, and never costs a full-size decode.

    Args:
        path: the image file.
        side: the longest side of the result, in pixels.

    Returns:
        a PIL image in RGB. Raises InputError naming ``path`` when it cannot be read or decoded.
    """
    from PIL import Image

    with _decoding(str(path)), Image.open(path) as image:
        return _thumbnail(image, side)


def _thumbnail(image, side: int):  # noqa: ANN001, ANN202 - PIL images
    image.draft("RGB", (side, side))  # JPEG: decode at reduced scale
    image.load()
    thumbnail = _rgb(image)
    thumbnail.thumbnail((side, side))
    return thumbnail


@contextmanager
def _decoding(source: str) -> Iterator[None]:
    """Pillow's decoding failures, whatever their class, as one InputError naming ``source``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Our own pixel limit is checked before decoding, against our own setting.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(source, "not an image (unrecognised data)") from None
    except FileNotFoundError:
        raise InputError(source, "file not found") from None
    except Image.DecompressionBombError as exc:
        raise InputError(source, f"decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(source, f"damaged image: {exc}") from None


def perceptual_hash(image) -> str:  # noqa: ANN001 - PIL image
    """imagehash's DCT hash: survives rescaling, recompression and small edits."""
    import imagehash

    return str(imagehash.phash(image))


def _rgb(image):  # noqa: ANN001, ANN202 - PIL images
    from PIL import Image

    if image.mode in ("RGBA", "LA", "P") and ("transparency" in image.info or image.mode != "P"):
        # Transparent areas become white, as a page shows them, not black.
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
