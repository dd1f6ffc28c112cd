"""A fast PNG decoder for checking downloaded images (RELIABILITY 6), where
libspng (pyspng) is installed; Pillow otherwise and for unusual files.

Decoding was the largest part of a worker's CPU per job once writing was
fast (pngwrite): Pillow's PNG decoder inflates with the system's zlib and
unfilters row by row, 12-15 ms for a 1024 px render here, against 7-8 ms for
libspng. libspng is fuzzed and bounds-checked (it is what pyspng wraps).
pyspng's libspng inflates with plain zlib, so the image data are first
inflated by ISA-L and handed to it as stored blocks (stored()): 4-5 ms in
all instead of 7.5.

Only the plain cases take this path: 8-bit L, RGB or RGBA, not
interlaced, no transparent colour (tRNS), up to pngwrite.WHOLE_BYTES of
pixels. Anything else (palettes, grey + alpha, 16-bit, fewer bits, interlacing, tRNS,
animation, bigger images, which Pillow handles in strips) is decoded by Pillow. The
pixels are the same either way (tests/lib/test_pngread.py). Chunk CRCs are
checked beforehand by Pillow's verify(), which check_image always runs.
"""

from __future__ import annotations

from dataclasses import dataclass
import struct
import zlib

from isal import isal_zlib
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


@dataclass
class Decoded:
    pixels: np.ndarray  # (h, w, bands), or (h, w) for L
    rows: bytes  # the image data inflated: each row its filter type, then its bytes as the file filtered them


def decode(data: bytes, mode: str, size: tuple[int, int]) -> Decoded | None:
    """The pixels of a PNG that fast_mode() accepted (its size as Pillow
    read it, w x h), as (h, w, bands) or (h, w) for L, with its rows as they
    were filtered (for pngwrite.encode_filtered: libspng has unfiltered
    every one, so each filter type is valid); None when the file is
    not plain and whole (stored() says no) or libspng refuses it. Pillow then
    has the last word: it refuses a damaged file with its own error, and a
    file only libspng dislikes (it keeps at most 64 MiB of chunks, say) is
    still decoded.

    libspng only ever sees what stored() rebuilt, never the file as it came:
    pyspng asks libspng not to check CRCs, which also skips the zlib stream's
    Adler-32, so damaged image data would decode as wrong pixels. ISA-L has
    checked that checksum (and the size) before."""
    w, h = size
    found = inflate(data, h * (1 + w * len(mode)))
    if found is None:
        return None
    try:
        pixels = pyspng.load(rebuild(data, *found), mode)
    except RuntimeError:  # pyspng's one error: "could not decode image: <libspng's reason>"
        return None
    if pixels.dtype != np.uint8 or pixels.shape[:2] != (size[1], size[0]):  # pragma: no cover - not as probed
        return None
    return Decoded(pixels, found[1])


def filtered_rows(data: bytes, mode: str, size: tuple[int, int]) -> bytes | None:
    """The image data of a PNG that fast_mode() accepted, inflated and
    checked without unfiltering them: its rows as the file filtered them
    (for pngwrite.encode_filtered), or None (Pillow then decodes the file).

    For such a file (8-bit L, RGB or RGBA, not interlaced, chunk CRCs
    checked by Pillow's verify()) the image data are all a decoder checks:
    ISA-L inflates them to exactly the size the header promises and checks
    their Adler-32, and every row's filter type must be one of the five
    (0-4). Unfiltering such rows cannot fail: any bytes are pixels. So a
    result can be checked and written again without its pixels, which only
    its thumbnail needs (made later, generations/thumbnails.py); unfiltering
    a 1024 px render is most of decode()'s time (libspng's Paeth: ~3 ns a
    byte)."""
    w, h = size
    stride = 1 + w * len(mode)
    found = inflate(data, h * stride)
    if found is None:
        return None
    rows = found[1]
    if int(np.frombuffer(rows, np.uint8)[::stride].max(initial=0)) > 4:
        return None
    return rows


STORED_BLOCK = 65535  # the most a stored deflate block holds


def stored(data: bytes, raw_size: int) -> bytes | None:
    """The same PNG with its image data inflated by ISA-L and deflated again
    as stored (uncompressed) blocks, which libspng then reads at memory
    speed: pyspng's wheel inflates with plain zlib, most of its time on a
    1024 px render (7.5 ms, against ~1.2 ms for ISA-L and ~3.5 ms for
    libspng on stored data, ~2.5 ms for the rest here).

    raw_size: the filtered rows' size that the header promises. None (Pillow
    decodes the file) unless the chunks are well formed, the image data
    inflate to exactly that size and end there with the right Adler-32, and
    no chunk but IEND follows them (a late tRNS or animation frames are for
    Pillow to judge). Inflating never goes past raw_size + 1 bytes (no
    decompression bomb)."""
    found = inflate(data, raw_size)
    return None if found is None else rebuild(data, *found)


def inflate(data: bytes, raw_size: int) -> tuple[list, bytes] | None:
    """stored()'s checks and its inflating: (the chunks before the image
    data, the rows inflated), or None."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    head, idat, pos, seen_idat = [], [], 8, False
    view = memoryview(data)
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        tag = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > len(data):
            return None
        if tag == b"IDAT":
            seen_idat = True
            idat.append(view[pos + 8:pos + 8 + length])
        elif seen_idat:
            if tag != b"IEND":
                return None
            break
        else:
            head.append(view[pos:end])
        pos = end
    if not idat:
        return None
    inflater = isal_zlib.decompressobj()
    try:
        raw = inflater.decompress(idat[0] if len(idat) == 1 else b"".join(idat), raw_size + 1)
    except isal_zlib.error:  # a bad stream or Adler-32
        return None
    if len(raw) != raw_size or not inflater.eof:
        return None
    return head, raw


def rebuild(data: bytes, head: list, raw: bytes) -> bytes:
    """The PNG of stored(): its signature, the chunks before the image data
    (head, from inflate()), the rows as stored blocks, IEND."""
    view = memoryview(data)
    raw_size = len(raw)
    # One copy: the parts are joined once, and the new IDAT's CRC is run
    # over them as they are (IDAT, zlib header, stored blocks, Adler-32).
    rows = memoryview(raw)
    blocks = -(-raw_size // STORED_BLOCK)
    body = [b"IDAT", b"\x78\x01"]  # deflate, 32 KiB window, no dictionary
    for start in range(0, raw_size, STORED_BLOCK):
        block = rows[start:start + STORED_BLOCK]
        body += [struct.pack("<BHH", start + STORED_BLOCK >= raw_size, len(block), len(block) ^ 0xFFFF), block]
    body.append(struct.pack(">I", isal_zlib.adler32(raw)))
    crc = 0
    for part in body:
        crc = isal_zlib.crc32(part, crc)
    size = 2 + 5 * blocks + raw_size + 4
    return b"".join([view[:8], *head, struct.pack(">I", size), *body, struct.pack(">I", crc), IEND])


IEND = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
