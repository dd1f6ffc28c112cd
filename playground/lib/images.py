"""Checks of images that come from outside (results and uploads; RELIABILITY 6):
the bytes must decode fully, with Pillow, as an allowed image type within a
pixel cap, and are written again, without their metadata, before anyone
sees them."""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
import io
import struct
import threading

from django.conf import settings
from PIL import Image, UnidentifiedImageError

from .net.download import DownloadError

ALLOWED_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
THUMB_TYPES = {"jpg": "image/jpeg", "webp": "image/webp"}

# What Pillow's plugins raise on a damaged file (DecompressionBombError: a
# header over twice Image.MAX_IMAGE_PIXELS, refused by Image.open itself).
DAMAGED = (OSError, SyntaxError, ValueError, IndexError, EOFError, struct.error, Image.DecompressionBombError)

# A PNG's last chunk, always the same 12 bytes. verify() stops at its type
# without reading its CRC: a file cut in those last bytes still lacks it.
PNG_END = b"\0\0\0\0IEND\xaeB`\x82"

# The chunks of a PNG that carries nothing but its pixels and how to show
# their colours: such a file, once fully decoded, is kept byte for byte.
PLAIN_PNG_CHUNKS = {b"IHDR", b"IDAT", b"IEND", b"iCCP", b"sRGB", b"gAMA", b"cHRM"}


@dataclass
class CheckedImage:
    data: bytes  # re-encoded, or the file itself when it has nothing to strip (is_plain_png)
    format: str
    width: int
    height: int
    thumbnail: bytes
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


def check_image(data: bytes, *, max_pixels=None, thumb_size=512) -> CheckedImage:
    """Decode within limits, re-encode and make the thumbnail from the same
    decoded pixels; raise DownloadError otherwise.

    The file is written again in its own format (PNG stays lossless), with
    its colour profile and nothing else: no text, EXIF, XMP or comment, no
    bytes after the image. A PNG that already has nothing else (is_plain_png)
    and needed no conversion is kept as it came: writing a 1024 px PNG again
    costs ~20 ms of CPU and would change nothing.

    At most IMAGE_CHECKS_AT_ONCE run at once in a process: a job worker's
    many threads mostly wait for providers, and pixels are CPU and memory
    (~4 MiB a 1024 px image) that more threads would only hold longer."""
    with image_slots():
        return _check(data, max_pixels, thumb_size)


_slots = None
_slots_lock = threading.Lock()


def image_slots() -> threading.BoundedSemaphore:
    global _slots
    if _slots is None:
        with _slots_lock:
            if _slots is None:
                _slots = threading.BoundedSemaphore(max(1, settings.IMAGE_CHECKS_AT_ONCE))
    return _slots


def _check(data: bytes, max_pixels, thumb_size) -> CheckedImage:
    try:
        fmt, img, converted = decode(data, max_pixels or settings.IMAGE_MAX_PIXELS)
        out = io.BytesIO()
        icc = img.info.get("icc_profile")
        if fmt == "PNG" and not converted and is_plain_png(data):
            out.write(data)
        elif fmt == "PNG":
            img.save(out, "PNG", compress_level=1, icc_profile=icc)  # the fastest level
        elif fmt == "JPEG":
            img.save(out, "JPEG", quality=95, icc_profile=icc)
        else:
            img.save(out, "WEBP", quality=95, method=0, icc_profile=icc)  # method 0: ~3x faster than the default
        thumb, thumb_ext = _thumbnail_file(img, thumb_size)
    except DownloadError:
        raise
    except UnidentifiedImageError:
        raise DownloadError("The file is not a PNG, JPEG or WebP image.") from None
    except DAMAGED as e:
        raise DownloadError(f"The file is not a valid image ({type(e).__name__}).") from None
    return CheckedImage(out.getvalue(), fmt, img.width, img.height, thumb, thumb_ext)


def decode(data: bytes, max_pixels: int) -> tuple[str, Image.Image, bool]:
    """The format and the fully decoded image (mode L, LA, RGB or RGBA; of
    its metadata only the colour profile kept) of untrusted bytes, and
    whether its pixels had to be converted to that mode. Raises
    DownloadError (a refused type or size) or what Pillow raises (DAMAGED,
    UnidentifiedImageError) on a damaged file.

    Two opens: verify() reads the whole file without decoding the pixels (a
    PNG's every chunk CRC, to its IEND), and leaves the image unusable; the
    second open decodes every pixel, and load() raises on data that end too
    soon, as ImageFile.LOAD_TRUNCATED_IMAGES is False (never set here)."""
    with Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS)) as probe:
        fmt = probe.format
        w, h = probe.size  # from the header: nothing decoded yet
        if fmt not in ALLOWED_FORMATS:  # e.g. MPO, which the JPEG plugin opens
            raise DownloadError(f"{fmt or 'Unknown'} images are not accepted (PNG, JPEG or WebP).")
        if w * h > max_pixels:  # per call; Pillow's process-wide Image.MAX_IMAGE_PIXELS is left alone
            raise DownloadError(f"The image has {w}x{h} pixels, over the limit of {max_pixels}.")
        if fmt == "PNG" and not probe.tile:  # no image data (IDAT): it would load as a blank image
            raise DownloadError("The file is not a valid image (no image data).")
        probe.verify()
        if fmt == "PNG" and PNG_END not in data:
            raise DownloadError("The file is not a valid image (it ends too soon).")
    img = Image.open(io.BytesIO(data), formats=[fmt])
    img.load()  # the first frame of an animation only: what is stored
    alpha = "A" in img.getbands() or "transparency" in img.info  # a transparent colour becomes alpha
    mode = ("LA" if alpha else "L") if img.mode in ("L", "LA") else ("RGBA" if alpha else "RGB")
    converted = img.mode != mode
    if converted:
        img = img.convert(mode)
    img.info = {k: v for k, v in img.info.items() if k == "icc_profile"}
    return fmt, img, converted


def is_plain_png(data: bytes) -> bool:
    """Whether a PNG (one decode() accepted: every chunk's CRC checked) has
    only the chunks of PLAIN_PNG_CHUNKS, and not one byte after its IEND."""
    pos, end = 8, len(data)
    while pos + 8 <= end:
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind not in PLAIN_PNG_CHUNKS:
            return False
        pos += 12 + length
        if kind == b"IEND":
            return pos == end
    return False


def make_thumbnail(data: bytes, size: int = 512) -> tuple[bytes, str]:
    """The thumbnail of an image check_image() wrote (a stored result an
    earlier version saved without one, generations/thumbnails.py), and its
    extension. Raises as decode() does on a file that is not one."""
    return _thumbnail_file(decode(data, settings.IMAGE_MAX_PIXELS)[1], size)


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
