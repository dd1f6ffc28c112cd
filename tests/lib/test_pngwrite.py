"""The PNG writer that re-encodes every stored PNG (playground/lib/pngwrite.py),
and what check_image keeps and drops through it."""

import io
import random
import struct
import zlib

import pytest
from PIL import Image, ImageCms, PngImagePlugin

from playground.lib import pngwrite
from playground.lib.images import check_image


def noisy(mode, size, seed=1):
    rnd = random.Random(seed)
    bands = len(Image.new(mode, (1, 1)).getbands())
    data = bytes(rnd.randrange(256) for _ in range(size[0] * size[1] * bands))
    return Image.frombytes(mode, size, data)


def chunks(data: bytes):
    """(type, body) of each chunk, each CRC checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, out = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        tag, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(tag + body), tag
        out.append((tag, body))
        pos += 12 + length
    return out


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("size", [(1, 1), (3, 2), (257, 5), (700, 1500)])
def test_every_pixel_comes_back_exactly(mode, size):
    img = noisy(mode, size)
    data = pngwrite.encode(img)
    back = Image.open(io.BytesIO(data))
    assert (back.format, back.mode, back.size) == ("PNG", mode, size)
    assert back.tobytes() == img.tobytes()
    tags = [t for t, _ in chunks(data)]
    assert tags[0] == b"IHDR" and tags[-1] == b"IEND" and b"IDAT" in tags


def test_a_large_image_is_written_in_several_strips_that_decode_as_one(monkeypatch):
    monkeypatch.setattr(pngwrite, "WHOLE_BYTES", 1 << 20)  # as if over the size written in one go
    img = noisy("RGB", (600, 1200), seed=7)  # 2.1 MB of rows: three strips
    data = pngwrite.encode(img)
    assert sum(t == b"IDAT" for t, _ in chunks(data)) >= 3
    assert Image.open(io.BytesIO(data)).tobytes() == img.tobytes()


def test_flat_images_compress_well():
    img = Image.new("RGB", (1024, 1024), (30, 90, 160))
    assert len(pngwrite.encode(img)) < 20_000  # 3 MB of pixels


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_rows_already_filtered_are_written_as_they_are_and_decode_to_the_same_pixels(mode):
    img = noisy(mode, (97, 41), seed=5)
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)  # Pillow's adaptive filters: rows of every type
    rows = zlib.decompress(b"".join(body for tag, body in chunks(buf.getvalue()) if tag == b"IDAT"))
    assert len({rows[y * (1 + 97 * len(mode))] for y in range(41)}) > 1
    data = pngwrite.encode_filtered(97, 41, mode, rows)
    assert [t for t, _ in chunks(data)] == [b"IHDR", b"IDAT", b"IEND"]
    assert zlib.decompress(chunks(data)[1][1]) == rows  # the file's own filters kept
    assert Image.open(io.BytesIO(data)).tobytes() == img.tobytes()
    with pytest.raises(ValueError):
        pngwrite.encode_filtered(97, 40, mode, rows)  # not that many rows


def test_other_modes_are_refused():
    with pytest.raises(ValueError):
        pngwrite.encode(Image.new("P", (4, 4)))


def test_check_image_keeps_the_colour_profile_and_drops_text_and_exif():
    img = noisy("RGB", (64, 48))
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret-location 51.5N")
    buf = io.BytesIO()
    img.save(buf, "PNG", pnginfo=info, icc_profile=icc, exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00")
    checked = check_image(buf.getvalue())
    tags = [t for t, _ in chunks(checked.data)]
    assert b"iCCP" in tags
    assert not {b"tEXt", b"iTXt", b"zTXt", b"eXIf"} & set(tags)
    assert b"secret-location" not in checked.data
    back = Image.open(io.BytesIO(checked.data))
    assert back.info["icc_profile"] == icc
    assert back.tobytes() == img.tobytes()


def test_a_transparent_colour_and_a_palette_keep_their_transparency():
    rgb = Image.new("RGB", (20, 10), (255, 0, 0))
    rgb.paste((0, 255, 0), (0, 0, 10, 10))
    buf = io.BytesIO()
    rgb.save(buf, "PNG", transparency=(0, 255, 0))
    back = Image.open(io.BytesIO(check_image(buf.getvalue()).data))
    assert back.mode == "RGBA"
    assert back.getpixel((2, 2))[3] == 0 and back.getpixel((15, 2)) == (255, 0, 0, 255)

    grey = Image.new("L", (20, 10), 200)
    grey.paste(50, (0, 0, 10, 10))
    buf = io.BytesIO()
    grey.save(buf, "PNG", transparency=50)
    back = Image.open(io.BytesIO(check_image(buf.getvalue()).data))
    assert back.mode == "LA" and back.getpixel((2, 2)) == (50, 0) and back.getpixel((15, 2)) == (200, 255)

    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    green = pal.getpixel((2, 2))
    buf = io.BytesIO()
    pal.save(buf, "PNG", transparency=green)
    back = Image.open(io.BytesIO(check_image(buf.getvalue()).data))
    assert back.mode == "RGBA" and back.getpixel((2, 2))[3] == 0 and back.getpixel((15, 2))[3] == 255


def test_sixteen_bit_and_grey_images_are_stored_as_8_bit_that_look_the_same():
    grey = noisy("L", (30, 20))
    buf = io.BytesIO()
    grey.save(buf, "PNG")
    back = Image.open(io.BytesIO(check_image(buf.getvalue()).data))
    assert back.mode == "L" and back.tobytes() == grey.tobytes()

    wide = Image.new("I;16", (16, 16), 40000)
    buf = io.BytesIO()
    wide.save(buf, "PNG")
    back = Image.open(io.BytesIO(check_image(buf.getvalue()).data))
    assert back.mode in ("RGB", "L") and back.size == (16, 16)


def test_thumbnails_are_jpeg_when_opaque_and_webp_with_alpha():
    opaque = io.BytesIO()
    noisy("RGB", (1024, 768)).save(opaque, "PNG")
    checked = check_image(opaque.getvalue())
    thumb = Image.open(io.BytesIO(checked.thumbnail))
    assert (checked.thumb_extension, thumb.format, thumb.size) == ("jpg", "JPEG", (512, 384))

    alpha = io.BytesIO()
    noisy("RGBA", (600, 600)).save(alpha, "PNG")
    checked = check_image(alpha.getvalue())
    thumb = Image.open(io.BytesIO(checked.thumbnail))
    assert (checked.thumb_extension, thumb.format, thumb.mode) == ("webp", "WEBP", "RGBA")
