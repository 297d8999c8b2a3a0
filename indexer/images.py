"""Image validation: real format, size and pixel limits, complete data; hashing."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

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
    from PIL import Image, UnidentifiedImageError

    if data is None:
        raise InputError(source, "not found in the input")
    if len(data) > max_bytes:
        raise InputError(source, f"over the {max_bytes}-byte image limit")
    if not data:
        raise InputError(source, "empty file")
    try:
        with warnings.catch_warnings():
            # The pixel limit is checked below, before decoding, against our own setting.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            fmt = image.format or "?"
            if fmt not in ALLOWED_FORMATS:
                raise InputError(source, f"unsupported image format {fmt}")
            width, height = image.size
            if width * height > max_pixels:
                raise InputError(source, f"{width}x{height} is over the {max_pixels}-pixel limit")
            if min(width, height) < min_side:
                raise InputError(source, f"{width}x{height} is smaller than {min_side} px (an icon or spacer)")
            image.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))  # JPEG: decode at reduced scale
            image.load()
            thumbnail = _rgb(image)
            thumbnail.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(source, "not an image (unrecognised data)") from None
    except Image.DecompressionBombError as exc:
        raise InputError(source, f"decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(source, f"damaged image: {exc}") from None
    return ImageData(
        content_hash=hashlib.sha256(data).hexdigest(),
        data=data,
        width=width,
        height=height,
        format=fmt.lower(),
        thumbnail=thumbnail,
        phash=perceptual_hash(thumbnail),
    )


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
