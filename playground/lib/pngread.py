"""A fast PNG decoder for checking downloaded images (RELIABILITY 6), where
libspng (pyspng) is installed; Pillow otherwise and for unusual files.

Decoding was the largest part of a worker's CPU per job once writing was
fast (pngwrite): Pillow's PNG decoder inflates with the system's zlib and
unfilters row by row, 12-15 ms for a 1024 px render here, against 7-8 ms for
libspng. libspng is fuzzed and bounds-checked (it is what pyspng wraps).

Only the plain cases take this path: 8-bit L, RGB or RGBA, not
interlaced, no transparent colour (tRNS), up to pngwrite.WHOLE_BYTES of
pixels. Anything else (palettes, grey + alpha, 16-bit, fewer bits, interlacing, tRNS,
animation, bigger images, which Pillow handles in strips) is decoded by Pillow. The
pixels are the same either way (tests/lib/test_pngread.py). Chunk CRCs are
checked beforehand by Pillow's verify(), which check_image always runs.
"""

from __future__ import annotations

import numpy as np

try:
    import pyspng
except ImportError:  # pragma: no cover - a platform without its wheel
    pyspng = None

from . import pngwrite

FAST_MODES = ("L", "RGB", "RGBA")  # libspng cannot give grey + alpha (LA) as it is stored


def fast_mode(probe) -> str | None:
    """The mode to decode an opened (not yet loaded) PNG in with libspng, or
    None when Pillow should do it."""
    if pyspng is None or probe.format != "PNG" or probe.mode not in FAST_MODES:
        return None
    if "transparency" in probe.info or probe.info.get("interlace") or getattr(probe, "is_animated", False):
        return None
    if len(probe.tile) != 1 or probe.tile[0].args != probe.mode:  # 16-bit ("RGB;16B") or 1-4 bit ("L;2")
        return None
    w, h = probe.size
    if w * h * len(probe.mode) > pngwrite.WHOLE_BYTES:
        return None
    return probe.mode


def decode(data: bytes, mode: str, size: tuple[int, int]) -> np.ndarray | None:
    """The pixels of a PNG that fast_mode() accepted (its size as Pillow
    read it, w x h), as (h, w, bands) or
    (h, w) for L; None if libspng refuses the file. Pillow then has the last
    word: it refuses a damaged file with its own error, and a file only
    libspng dislikes (it keeps at most 64 MiB of chunks, say) is still
    decoded."""
    try:
        pixels = pyspng.load(data, mode)
    except RuntimeError:  # pyspng's one error: "could not decode image: <libspng's reason>"
        return None
    if pixels.dtype != np.uint8 or pixels.shape[:2] != (size[1], size[0]):  # pragma: no cover - not as probed
        return None
    return pixels
