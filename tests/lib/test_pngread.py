"""The fast PNG decoder behind check_image (playground/lib/pngread.py): plain
8-bit PNGs are decoded by libspng, every other kind by Pillow, and the stored
image's pixels and its thumbnail are the same either way."""

import io
import struct
import zlib

import pytest
from PIL import Image, ImageCms

from playground.lib import images, pngread
from playground.lib.egress import DownloadError

from .test_pngwrite import chunks, noisy

pytestmark = pytest.mark.skipif(pngread.pyspng is None, reason="pyspng is not installed on this platform")


def png(img, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **params)
    return buf.getvalue()


def interlaced(img) -> bytes:
    """An Adam7-interlaced PNG of an RGB image (Pillow cannot write one)."""
    w, h = img.size
    px = img.tobytes()
    raw = b""
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                           (0, 1, 1, 2)):
        for y in range(y0, h, dy):
            row = b"".join(px[(y * w + x) * 3:(y * w + x) * 3 + 3] for x in range(x0, w, dx))
            if row:
                raw += b"\x00" + row

    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def opened(data):
    return Image.open(io.BytesIO(data))


def check_with_pillow(data, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(pngread, "fast_mode", lambda probe: None)
        return images.check_image(data)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
@pytest.mark.parametrize("size", [(1, 1), (5, 3), (257, 9), (640, 480)])
def test_plain_pngs_decode_to_the_same_pixels_as_pillow(mode, size, monkeypatch):
    img = noisy(mode, size, seed=size[0])
    data = png(img, optimize=size[0] % 2 == 1)  # Pillow's adaptive filters: Sub, Up, Average and Paeth rows
    assert pngread.fast_mode(opened(data)) == mode
    decoded = pngread.decode(data, mode, size)
    assert decoded is not None  # libspng decoded it
    pixels = decoded.pixels
    assert pixels.tobytes() == img.tobytes() and pixels.shape[:2] == (size[1], size[0])
    fast = images.check_image(data)
    slow = check_with_pillow(data, monkeypatch)
    # The same pixels in a new file: only what pngwrite writes, the rows
    # deflated again with the filters the file chose.
    assert opened(fast.data).tobytes() == opened(slow.data).tobytes() == img.tobytes()
    assert [t for t, _ in chunks(fast.data)] == [b"IHDR", b"IDAT", b"IEND"]
    assert fast.data != data
    assert fast.thumbnail == slow.thumbnail and fast.thumb_extension == slow.thumb_extension
    assert (fast.format, fast.width, fast.height) == ("PNG", *size)


def test_the_colour_profile_is_kept_on_the_fast_path():
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = png(noisy("RGB", (32, 16)), icc_profile=icc, pnginfo=None)
    assert pngread.fast_mode(opened(data)) == "RGB"
    out = images.check_image(data)
    assert opened(out.data).info.get("icc_profile") == icc


@pytest.mark.parametrize("make", [
    pytest.param(lambda: png(noisy("RGB", (40, 30)).convert("P")), id="palette"),
    pytest.param(lambda: png(Image.new("I;16", (40, 30), 40000)), id="16-bit grey"),
    pytest.param(lambda: png(noisy("L", (40, 30)).convert("1")), id="1-bit"),
    pytest.param(lambda: png(noisy("RGB", (40, 30)), transparency=(1, 2, 3)), id="tRNS colour"),
    pytest.param(lambda: png(noisy("LA", (40, 30))), id="grey and alpha"),
    pytest.param(lambda: interlaced(noisy("RGB", (40, 30))), id="interlaced"),
    pytest.param(lambda: png(noisy("RGB", (40, 30)), save_all=True,
                             append_images=[noisy("RGB", (40, 30), seed=2)]), id="animated"),
])
def test_other_pngs_are_left_to_pillow_and_still_stored(make):
    data = make()
    assert pngread.fast_mode(opened(data)) is None
    out = images.check_image(data)
    assert opened(out.data).size == (40, 30)
    assert opened(out.data).convert("RGBA").tobytes() == opened(data).convert("RGBA").tobytes()


def test_an_image_over_the_whole_size_is_left_to_pillow(monkeypatch):
    monkeypatch.setattr(pngread.pngwrite, "WHOLE_BYTES", 1000)
    data = png(noisy("RGB", (20, 20)))  # 1,200 bytes of pixels
    assert pngread.fast_mode(opened(data)) is None
    assert opened(images.check_image(data).data).tobytes() == opened(data).tobytes()


def with_idat(data: bytes, body: bytes) -> bytes:
    """The PNG with its image data replaced by body (CRCs correct)."""
    out = [data[:8]]
    done = False
    for tag, chunk in chunks(data):
        if tag == b"IDAT":
            if done:
                continue
            chunk, done = body, True
        out.append(struct.pack(">I", len(chunk)) + tag + chunk + struct.pack(">I", zlib.crc32(tag + chunk)))
    return b"".join(out)


@pytest.mark.parametrize("damage", [
    pytest.param(lambda raw: zlib.compress(raw)[: len(zlib.compress(raw)) // 2], id="truncated stream"),
    pytest.param(lambda raw: b"\x78\x9c" + bytes(range(256)) * 4, id="not deflate"),
    pytest.param(lambda raw: zlib.compress(bytes([9]) + raw[1:]), id="unknown filter"),
])
def test_damaged_image_data_is_refused_with_a_clear_error(damage):
    img = noisy("RGB", (64, 48))
    data = png(img)
    raw = zlib.decompress(b"".join(c for t, c in chunks(data) if t == b"IDAT"))
    bad = with_idat(data, damage(raw))
    assert pngread.fast_mode(opened(bad)) == "RGB"
    assert pngread.decode(bad, "RGB", (64, 48)) is None  # libspng refuses it; then Pillow does
    with pytest.raises(DownloadError, match="not a valid image"):
        images.check_image(bad)


def stored_idat(data: bytes) -> bytes:
    """The image data of a PNG saved with compress_level=0, as in its file."""
    return b"".join(c for t, c in chunks(data) if t == b"IDAT")


@pytest.mark.parametrize("where", ["pixels", "adler-32"])
def test_damaged_stored_image_data_are_refused_not_decoded_as_other_pixels(where):
    """Stored deflate blocks have no check of their own but the stream's
    Adler-32, which libspng skips under pyspng: a flipped byte with the
    chunk's CRC made right must still be refused."""
    img = noisy("RGB", (64, 48))
    data = png(img, compress_level=0)
    body = bytearray(stored_idat(data))
    body[-4 if where == "adler-32" else len(body) // 2] ^= 0x01
    bad = with_idat(data, bytes(body))
    assert pngread.fast_mode(opened(bad)) == "RGB"
    assert pngread.stored(bad, 48 * (1 + 64 * 3)) is None
    assert pngread.decode(bad, "RGB", (64, 48)) is None
    with pytest.raises(DownloadError, match="not a valid image"):
        images.check_image(bad)


def chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def with_chunk_after_idat(data: bytes, extra: bytes) -> bytes:
    assert data.endswith(chunk(b"IEND", b""))
    return data[:-12] + extra + data[-12:]


def test_chunks_after_the_image_data_send_the_file_to_pillow():
    img = noisy("RGB", (40, 30))
    data = with_chunk_after_idat(png(img), chunk(b"tEXt", b"Comment\0late"))
    assert pngread.fast_mode(opened(data)) == "RGB"
    assert pngread.decode(data, "RGB", (40, 30)) is None
    assert opened(images.check_image(data).data).tobytes() == img.tobytes()  # still stored, by Pillow


def test_a_png_without_image_data_is_refused():
    data = png(noisy("RGB", (40, 30)))
    no_idat = b"".join([data[:8], *(chunk(t, c) for t, c in chunks(data) if t != b"IDAT")])
    with pytest.raises(DownloadError, match="not a valid image"):
        images.check_image(no_idat)


def test_an_empty_colour_profile_after_the_image_data_is_refused_with_a_clear_error():
    data = with_chunk_after_idat(png(noisy("RGB", (40, 30))), chunk(b"iCCP", b""))
    with pytest.raises(DownloadError, match="not a valid image"):
        images.check_image(data)


def test_a_file_only_libspng_refuses_is_still_decoded_by_pillow(monkeypatch):
    img = noisy("RGB", (64, 48))
    monkeypatch.setattr(pngread.pyspng, "load", lambda data, fmt: (_ for _ in ()).throw(RuntimeError("limits")))
    out = images.check_image(png(img))
    assert opened(out.data).tobytes() == img.tobytes()


def test_a_bad_chunk_crc_is_refused_before_decoding():
    data = bytearray(png(noisy("RGB", (64, 48))))
    data[-20] ^= 0xFF  # inside the last IDAT's data: its CRC no longer matches
    with pytest.raises(DownloadError, match="not a valid image"):
        images.check_image(bytes(data))


def test_the_image_data_handed_to_libspng_are_a_valid_png_of_the_same_pixels():
    img = noisy("RGB", (300, 200), seed=3)  # several IDAT chunks, filtered rows of every kind
    data = png(img, optimize=True)
    assert sum(t == b"IDAT" for t, _ in chunks(data)) > 1
    again = pngread.stored(data, 200 * (1 + 300 * 3))
    tags = [t for t, _ in chunks(again)]  # every CRC checked
    assert tags == [b"IHDR", b"IDAT", b"IEND"]
    assert opened(again).tobytes() == img.tobytes()  # Pillow checks the stored stream's Adler-32 too
    assert len(again) > 200 * 300 * 3  # stored, not compressed


@pytest.mark.parametrize("damage", [
    pytest.param(lambda raw: zlib.compress(raw)[:-9], id="truncated stream"),
    pytest.param(lambda raw: zlib.compress(raw[:-1]), id="a byte short"),
    pytest.param(lambda raw: zlib.compress(raw + b"\0"), id="a byte over"),
    pytest.param(lambda raw: zlib.compress(bytes(50_000_000)), id="a bomb"),
    pytest.param(lambda raw: b"not deflate at all", id="not deflate"),
])
def test_image_data_of_the_wrong_size_are_left_to_the_decoders(damage):
    data = png(noisy("RGB", (10, 10)))
    raw = zlib.decompress(b"".join(c for t, c in chunks(data) if t == b"IDAT"))
    assert pngread.stored(with_idat(data, damage(raw)), len(raw)) is None
    assert pngread.stored(data, len(raw)) is not None


# --- results: checked and written again without their pixels (thumbnail_now=False) ---


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_a_result_is_written_again_from_its_rows_with_the_same_pixels_and_no_thumbnail_yet(mode):
    img = noisy(mode, (257, 61), seed=7)
    data = png(img, optimize=True)  # rows of every filter type
    checked = images.check_image(data, thumbnail_now=False)
    assert checked.thumbnail is None
    assert checked.data != data  # a new file (deflated again), not the one that came
    assert [t for t, _ in chunks(checked.data)] == [b"IHDR", b"IDAT", b"IEND"]
    assert opened(checked.data).tobytes() == img.tobytes()
    # and its thumbnail, made later from the file written, is the one made at once
    thumb, ext = images.make_thumbnail(checked.data)
    now = images.check_image(data)
    assert ext == now.thumb_extension and opened(thumb).size == opened(now.thumbnail).size


@pytest.mark.parametrize("filter_type", [5, 9, 255])
def test_a_result_with_an_unknown_row_filter_is_refused_though_its_pixels_are_not_decoded(filter_type):
    img = noisy("RGB", (64, 48))
    data = png(img)
    raw = bytearray(zlib.decompress(b"".join(c for t, c in chunks(data) if t == b"IDAT")))
    raw[20 * (1 + 64 * 3)] = filter_type  # row 20's filter type
    bad = with_idat(data, zlib.compress(bytes(raw)))
    assert pngread.fast_mode(opened(bad)) == "RGB"
    assert pngread.filtered_rows(bad, "RGB", (64, 48)) is None  # then Pillow decodes it, and refuses it
    with pytest.raises(DownloadError, match="not a valid image"):
        images.check_image(bad, thumbnail_now=False)


@pytest.mark.parametrize("damage", [
    pytest.param(lambda raw: zlib.compress(raw)[:-9], id="truncated stream"),
    pytest.param(lambda raw: zlib.compress(raw[:-1]), id="a byte short"),
])
def test_a_result_with_damaged_image_data_is_refused_though_its_pixels_are_not_decoded(damage):
    data = png(noisy("RGB", (64, 48)))
    raw = zlib.decompress(b"".join(c for t, c in chunks(data) if t == b"IDAT"))
    bad = with_idat(data, damage(raw))
    assert pngread.filtered_rows(bad, "RGB", (64, 48)) is None
    with pytest.raises(DownloadError, match="not a valid image"):
        images.check_image(bad, thumbnail_now=False)


def test_a_result_that_is_not_a_plain_png_gets_its_thumbnail_at_once():
    img = noisy("RGB", (64, 48))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    checked = images.check_image(buf.getvalue(), thumbnail_now=False)
    assert checked.format == "JPEG" and checked.thumbnail and checked.thumb_extension == "jpg"
