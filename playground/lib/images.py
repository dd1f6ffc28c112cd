"""Checks of images that come from outside (results and uploads; RELIABILITY 6):
the bytes must decode as an allowed image type within a pixel cap, and are
re-encoded before anyone sees them."""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
import io
import struct

from django.conf import settings
from PIL import Image, UnidentifiedImageError

from . import pngread, pngwrite
from .egress import DownloadError

ALLOWED_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
THUMB_TYPES = {"jpg": "image/jpeg", "webp": "image/webp"}

@dataclass
class CheckedImage:
    data: bytes  # re-encoded
    format: str
    width: int
    height: int
    thumbnail: bytes | None  # None: made later from the file written (check_image's thumbnail_now)
    thumb_extension: str = "webp"  # "jpg" for an opaque image, "webp" (alpha kept) otherwise

    @property
    def content_type(self):
        return ALLOWED_FORMATS[self.format]

    @property
    def extension(self):
        return EXTENSIONS[self.format]

    @property
    def sha256(self):
        return hashlib.sha256(self.data).hexdigest()


def check_image(data: bytes, *, max_pixels=None, thumb_size=512, thumbnail_now=True) -> CheckedImage:
    """Decode within limits and re-encode; raise DownloadError otherwise.

    thumbnail_now=False (results): a plain 8-bit PNG is checked and written
    again from its image data as they are (pngread.filtered_rows), without
    unfiltering its pixels, and gets no thumbnail here (thumbnail None):
    make_thumbnail() makes it later from the file written. Any other image
    is decoded anyway, and its thumbnail made at once."""
    max_pixels = max_pixels or settings.IMAGE_MAX_PIXELS
    try:
        with Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS)) as probe:
            fmt = probe.format
            w, h = probe.size
            if fmt not in ALLOWED_FORMATS:  # pragma: no cover - Image.open refuses them first
                raise DownloadError(f"{fmt or 'Unknown'} images are not accepted (PNG, JPEG or WebP).")
            if w * h > max_pixels:
                raise DownloadError(f"The image has {w}x{h} pixels, over the limit of {max_pixels}.")
            if not probe.tile:  # e.g. a PNG with no image data (IDAT) at all
                raise DownloadError("The file is not a valid image (no image data).")
            fast = pngread.fast_mode(probe)
            icc = probe.info.get("icc_profile")
            probe.verify()  # every chunk's CRC, before either decoder reads it
        if fast and not thumbnail_now:
            rows = pngread.filtered_rows(data, fast, (w, h))
            if rows is not None:
                return CheckedImage(pngwrite.encode_filtered(w, h, fast, rows, icc), fmt, w, h, None, "")
        # A plain 8-bit PNG: libspng decodes it in about half Pillow's time.
        decoded = pngread.decode(data, fast, (w, h)) if fast else None
        if decoded is not None:
            # The rows as the file filtered them (libspng has just unfiltered
            # every one without error), deflated again into a new file.
            data_out = pngwrite.encode_filtered(w, h, fast, decoded.rows, icc)
            img = Image.fromarray(decoded.pixels)
        else:
            img = _pillow_decode(data)
            if "transparency" in img.info and img.mode in ("RGB", "L"):
                img = img.convert(img.mode + "A" if img.mode == "L" else "RGBA")  # a transparent colour: alpha
            # Re-encoding is most of a worker's CPU per job, so each format
            # is written the cheap way that keeps it: PNG (lossless) with
            # pngwrite (one filter, ISA-L deflate: 3-10x faster than Pillow's
            # encoder at its fastest level); WebP with its fastest method 0
            # (~3x faster than the default 4 at the same quality).
            if fmt == "PNG":
                data_out = pngwrite.encode(img)
            else:
                out = io.BytesIO()
                if fmt == "JPEG":
                    img.convert("RGB").save(out, "JPEG", quality=95)
                else:
                    img.save(out, "WEBP", quality=95, method=0)
                data_out = out.getvalue()
        thumb, thumb_ext = _thumbnail_file(img, thumb_size)
    except DownloadError:
        raise
    except UnidentifiedImageError:
        raise DownloadError("The file is not a PNG, JPEG or WebP image.") from None
    except (OSError, SyntaxError, ValueError, IndexError, EOFError, struct.error,
            Image.DecompressionBombError) as e:  # what Pillow's plugins raise on damaged files
        raise DownloadError(f"The file is not a valid image ({type(e).__name__}).") from None
    return CheckedImage(data_out, fmt, w, h, thumb, thumb_ext)


def make_thumbnail(data: bytes, size: int = 512) -> tuple[bytes, str]:
    """The thumbnail of an image check_image() wrote (a stored result), and
    its extension. Raises what Pillow raises on a file that is not one."""
    with Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS)) as probe:
        w, h = probe.size
        if w * h > settings.IMAGE_MAX_PIXELS:
            raise ValueError(f"{w}x{h} pixels, over the limit")
        fast = pngread.fast_mode(probe)
    decoded = pngread.decode(data, fast, (w, h)) if fast else None
    img = Image.fromarray(decoded.pixels) if decoded is not None else _pillow_decode(data)
    return _thumbnail_file(img, size)


def _pillow_decode(data: bytes) -> Image.Image:
    """The image decoded by Pillow, in one of the modes kept (L, LA, RGB, RGBA)."""
    img = Image.open(io.BytesIO(data))
    img.load()
    if img.mode not in ("RGB", "RGBA", "L", "LA"):
        img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
    return img


def _thumbnail_file(img: Image.Image, size: int) -> tuple[bytes, str]:
    """Thumbnails: JPEG for an opaque image (~3x cheaper to write than
    WebP), WebP where there is an alpha channel to keep."""
    tbuf = io.BytesIO()
    small = thumbnail(img, size)
    if "A" in small.getbands():
        small.save(tbuf, "WEBP", quality=80, method=0)
        return tbuf.getvalue(), "webp"
    small.save(tbuf, "JPEG", quality=82)
    return tbuf.getvalue(), "jpg"


def thumbnail(img: Image.Image, size: int) -> Image.Image:
    """A copy that fits in size x size, aspect kept (as Image.thumbnail, but
    without copying the full image first). Reduced by whole factors first
    (reducing_gap=1: ~8x faster than a plain resize of a 1024 px image)."""
    w, h = img.size
    scale = min(size / w, size / h, 1.0)
    target = (max(1, round(w * scale)), max(1, round(h * scale)))
    if target == (w, h):
        return img
    return img.resize(target, Image.Resampling.BICUBIC, reducing_gap=1.0)
