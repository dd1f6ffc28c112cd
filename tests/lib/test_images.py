"""check_image (playground/lib/images.py): Pillow decodes every image that
comes from outside in full and writes it again; what it keeps, what it
drops and what it refuses. The mutated files are in test_image_mutations.py."""

import io
import struct
import zlib

import pytest
from PIL import Image, ImageCms, PngImagePlugin

from playground.lib import images
from playground.lib.net.download import DownloadError
from playground.lib.images import check_image


def gradient(mode, size):
    """A neutral image with every pixel different from its neighbours'
    rows: a gradient per band, each in another direction."""
    ramp = Image.linear_gradient("L")
    bands = [ramp, ramp.rotate(90), Image.radial_gradient("L"), ramp.rotate(180)]
    n = len(Image.new(mode, (1, 1)).getbands())
    return Image.merge(mode, [b.resize(size) for b in bands[:n]])


def encoded(img, fmt="PNG", **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def opened(data):
    return Image.open(io.BytesIO(data))


def chunks(data: bytes):
    """(type, body) of each chunk of a PNG, each CRC checked."""
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


def chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def with_idat(data: bytes, body: bytes) -> bytes:
    """The PNG with its image data replaced by body (CRCs correct)."""
    return b"".join([data[:8], *(chunk(t, body if t == b"IDAT" else c) for t, c in chunks(data))])


def idat_rows(data: bytes) -> bytes:
    return zlib.decompress(b"".join(c for t, c in chunks(data) if t == b"IDAT"))


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
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# --- what is kept ---


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("size", [(1, 1), (5, 3), (257, 9), (640, 480)])
def test_every_pixel_of_a_png_comes_back_in_a_new_file(mode, size):
    img = gradient(mode, size)
    data = encoded(img, optimize=size[0] % 2 == 1)  # Pillow's adaptive filters: rows of every type
    checked = check_image(data)
    back = opened(checked.data)
    assert (back.format, back.mode, back.size) == ("PNG", mode, size)
    assert back.tobytes() == img.tobytes()
    assert [t for t, _ in chunks(checked.data)][0] == b"IHDR"
    assert (checked.format, checked.width, checked.height, checked.content_type) == ("PNG", *size, "image/png")


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_a_png_with_nothing_to_strip_is_kept_byte_for_byte(mode):
    """Only its pixels and how to show their colours, and nothing after its
    end: written again it would be the same image, at ~20 ms of CPU."""
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for data in (encoded(gradient(mode, (64, 48))), encoded(gradient(mode, (64, 48)), icc_profile=icc)):
        checked = check_image(data)
        assert checked.data == data
        assert opened(checked.data).tobytes() == gradient(mode, (64, 48)).tobytes()


@pytest.mark.parametrize("extra", ["text", "dpi", "after the end", "palette"])
def test_a_png_with_anything_more_is_written_again_without_it(extra):
    img = gradient("RGB", (64, 48))
    data = encoded(img)
    data = {
        "text": data[:-12] + chunk(b"tEXt", b"Comment\0secret-location") + data[-12:],
        "dpi": encoded(img, dpi=(300, 300)),
        "after the end": data + b"PK\x03\x04 a zip after the image",
        "palette": encoded(img.convert("P")),
    }[extra]
    checked = check_image(data)
    assert checked.data != data
    assert set(t for t, _ in chunks(checked.data)) <= images.PLAIN_PNG_CHUNKS
    assert b"secret-location" not in checked.data and b"PK" not in checked.data[-40:]
    assert opened(checked.data).convert("RGB").tobytes() == opened(data).convert("RGB").tobytes()


@pytest.mark.parametrize("make", [
    pytest.param(lambda: encoded(gradient("RGB", (40, 30)).convert("P")), id="palette"),
    pytest.param(lambda: encoded(Image.new("I;16", (40, 30), 40000)), id="16-bit grey"),
    pytest.param(lambda: encoded(gradient("L", (40, 30)).convert("1")), id="1-bit"),
    pytest.param(lambda: encoded(gradient("RGB", (40, 30)), transparency=(1, 2, 3)), id="tRNS colour"),
    pytest.param(lambda: interlaced(gradient("RGB", (40, 30))), id="interlaced"),
    pytest.param(lambda: encoded(gradient("RGB", (40, 30)), save_all=True,
                                 append_images=[Image.new("RGB", (40, 30), "teal")]), id="animated"),
])
def test_other_kinds_of_image_are_stored_and_look_the_same(make):
    data = make()
    checked = check_image(data)
    assert opened(checked.data).size == (40, 30)
    assert opened(checked.data).convert("RGBA").tobytes() == opened(data).convert("RGBA").tobytes()


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_a_webp_is_stored_as_webp(mode):
    checked = check_image(encoded(gradient(mode, (40, 30)), "WEBP"))
    back = opened(checked.data)
    assert (checked.format, checked.content_type, back.format, back.size) == ("WEBP", "image/webp", "WEBP", (40, 30))
    assert back.mode == mode and checked.thumb_extension == ("webp" if mode == "RGBA" else "jpg")


def test_the_colour_profile_is_kept_and_text_and_exif_are_dropped():
    img = gradient("RGB", (64, 48))
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret-location 51.5N")
    data = encoded(img, pnginfo=info, icc_profile=icc, exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00")
    checked = check_image(data)
    tags = [t for t, _ in chunks(checked.data)]
    assert b"iCCP" in tags
    assert not {b"tEXt", b"iTXt", b"zTXt", b"eXIf"} & set(tags)
    assert b"secret-location" not in checked.data
    back = opened(checked.data)
    assert back.info["icc_profile"] == icc
    assert back.tobytes() == img.tobytes()


def test_a_jpeg_keeps_its_colour_profile_and_loses_its_comment_and_exif():
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010E] = "secret-exif"  # ImageDescription
    data = encoded(gradient("RGB", (64, 48)), "JPEG", quality=90, icc_profile=icc, comment=b"secret-comment",
                   exif=exif)
    checked = check_image(data)
    assert checked.format == "JPEG" and checked.extension == "jpg"
    assert b"secret" not in checked.data and b"secret" not in checked.thumbnail
    assert opened(checked.data).info.get("icc_profile") == icc


def test_a_transparent_colour_and_a_palette_keep_their_transparency():
    rgb = Image.new("RGB", (20, 10), (255, 0, 0))
    rgb.paste((0, 255, 0), (0, 0, 10, 10))
    back = opened(check_image(encoded(rgb, transparency=(0, 255, 0))).data)
    assert back.mode == "RGBA"
    assert back.getpixel((2, 2))[3] == 0 and back.getpixel((15, 2)) == (255, 0, 0, 255)

    grey = Image.new("L", (20, 10), 200)
    grey.paste(50, (0, 0, 10, 10))
    back = opened(check_image(encoded(grey, transparency=50)).data)
    assert back.mode == "LA" and back.getpixel((2, 2)) == (50, 0) and back.getpixel((15, 2)) == (200, 255)

    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    back = opened(check_image(encoded(pal, transparency=pal.getpixel((2, 2)))).data)
    assert back.mode == "RGBA" and back.getpixel((2, 2))[3] == 0 and back.getpixel((15, 2))[3] == 255


def test_sixteen_bit_and_grey_images_are_stored_as_8_bit_that_look_the_same():
    grey = gradient("L", (30, 20))
    back = opened(check_image(encoded(grey)).data)
    assert back.mode == "L" and back.tobytes() == grey.tobytes()
    back = opened(check_image(encoded(Image.new("I;16", (16, 16), 40000))).data)
    assert back.mode in ("RGB", "L") and back.size == (16, 16)


def test_thumbnails_are_jpeg_when_opaque_and_webp_with_alpha():
    checked = check_image(encoded(gradient("RGB", (1024, 768))))
    thumb = opened(checked.thumbnail)
    assert (checked.thumb_extension, thumb.format, thumb.size) == ("jpg", "JPEG", (512, 384))

    checked = check_image(encoded(gradient("RGBA", (600, 600))))
    thumb = opened(checked.thumbnail)
    assert (checked.thumb_extension, thumb.format, thumb.mode) == ("webp", "WEBP", "RGBA")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_stored_result_gets_the_same_thumbnail_as_its_check_made(fmt):
    data = encoded(gradient("RGB", (700, 300)), fmt)
    checked = check_image(data)
    thumb, ext = images.make_thumbnail(checked.data)
    assert ext == checked.thumb_extension == "jpg" and opened(thumb).size == opened(checked.thumbnail).size == (512, 219)


# --- what is refused ---


@pytest.mark.parametrize("damage", [
    pytest.param(lambda raw: zlib.compress(raw)[: len(zlib.compress(raw)) // 2], id="truncated stream"),
    pytest.param(lambda raw: b"\x78\x9c" + bytes(range(256)) * 4, id="not deflate"),
    pytest.param(lambda raw: zlib.compress(bytes([9]) + raw[1:]), id="unknown filter"),
    pytest.param(lambda raw: zlib.compress(raw[:20 * 193] + bytes([5]) + raw[20 * 193 + 1:]), id="unknown filter, row 20"),
    pytest.param(lambda raw: zlib.compress(raw[:-1]), id="a byte short"),
])
def test_damaged_image_data_are_refused_even_with_right_crcs(damage):
    data = encoded(gradient("RGB", (64, 48)))
    bad = with_idat(data, damage(idat_rows(data)))
    with pytest.raises(DownloadError, match="not a valid image"):
        check_image(bad)


@pytest.mark.parametrize("where", ["pixels", "adler-32"])
def test_damaged_stored_image_data_are_refused_not_decoded_as_other_pixels(where):
    """Stored deflate blocks have no check of their own but the stream's
    Adler-32: a flipped byte with the chunk's CRC made right is refused."""
    data = encoded(gradient("RGB", (64, 48)), compress_level=0)
    body = bytearray(b"".join(c for t, c in chunks(data) if t == b"IDAT"))
    body[-4 if where == "adler-32" else len(body) // 2] ^= 0x01
    with pytest.raises(DownloadError, match="not a valid image"):
        check_image(with_idat(data, bytes(body)))


def test_a_bad_chunk_crc_is_refused():
    data = bytearray(encoded(gradient("RGB", (64, 48))))
    data[-20] ^= 0xFF  # inside the last IDAT's data: its CRC no longer matches
    with pytest.raises(DownloadError, match="not a valid image"):
        check_image(bytes(data))


def test_a_png_without_image_data_or_without_its_end_is_refused():
    data = encoded(gradient("RGB", (40, 30)))
    no_idat = b"".join([data[:8], *(chunk(t, c) for t, c in chunks(data) if t != b"IDAT")])
    with pytest.raises(DownloadError, match="not a valid image"):
        check_image(no_idat)
    with pytest.raises(DownloadError, match="not a valid image"):
        check_image(data[:-12])  # no IEND: a cut file, though every pixel is there


def test_chunks_after_the_image_data_are_read_and_dropped():
    img = gradient("RGB", (40, 30))
    data = encoded(img)
    late = data[:-12] + chunk(b"tEXt", b"Comment\0late") + data[-12:]
    checked = check_image(late)
    assert opened(checked.data).tobytes() == img.tobytes() and b"late" not in checked.data
    with pytest.raises(DownloadError, match="not a valid image"):
        check_image(data[:-12] + chunk(b"iCCP", b"") + data[-12:])  # an empty colour profile


@pytest.mark.parametrize("cut", [1, 2, 3, 10, 200])
@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_a_cut_jpeg_or_webp_is_refused(fmt, cut):
    data = encoded(gradient("RGB", (64, 48)), fmt)
    check_image(data)
    with pytest.raises(DownloadError):
        check_image(data[:-cut])


def test_an_mpo_is_not_taken_for_a_jpeg():
    img = gradient("RGB", (32, 24))
    data = encoded(img, "MPO", save_all=True, append_images=[img])
    with pytest.raises(DownloadError, match="MPO images are not accepted"):
        check_image(data)
