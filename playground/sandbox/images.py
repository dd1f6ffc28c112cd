"""Real, deterministic images for the sandboxes: the same prompt, seed and
size always give the same pixels."""

import hashlib
import io
import random

from PIL import Image, ImageDraw, ImageFont


def _rng(prompt: str, seed) -> random.Random:
    digest = hashlib.sha256(f"{seed}|{prompt}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def render(prompt: str, seed, width: int, height: int, *, fmt: str = "PNG", variant: int = 0,
           label: str = "", source: Image.Image | None = None) -> bytes:
    rng = _rng(prompt, f"{seed}:{variant}")
    # Draw at a small size and scale up: a 4K image costs no more than a 1K one.
    scale = max(1, max(width, height) // 1024)
    w, h = max(1, width // scale), max(1, height // scale)
    top = tuple(rng.randrange(40, 220) for _ in range(3))
    bottom = tuple(rng.randrange(20, 200) for _ in range(3))
    if source is not None:
        img = source.convert("RGB").resize((w, h))
    else:
        img = Image.new("RGB", (w, h), top)
        grad = Image.linear_gradient("L").resize((w, h))
        img = Image.composite(Image.new("RGB", (w, h), bottom), img, grad)
    draw = ImageDraw.Draw(img, "RGBA")
    for _ in range(rng.randrange(6, 14)):
        color = tuple(rng.randrange(0, 256) for _ in range(3)) + (rng.randrange(90, 200),)
        x, y = rng.randrange(w), rng.randrange(h)
        r = rng.randrange(max(4, min(w, h) // 12), max(5, min(w, h) // 3))
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=color)
        else:
            pts = [(x + rng.randrange(-r, r), y + rng.randrange(-r, r)) for _ in range(rng.randrange(3, 6))]
            draw.polygon(pts, fill=color)
    text = (label + "\n" if label else "") + _wrap(prompt, max(10, w // 11))
    font = ImageFont.load_default(size=max(12, min(w, h) // 28))
    draw.multiline_text((w // 20 + 2, h // 20 + 2), text, fill=(0, 0, 0, 160), font=font)
    draw.multiline_text((w // 20, h // 20), text, fill=(255, 255, 255, 235), font=font)
    if (w, h) != (width, height):
        img = img.resize((width, height), Image.Resampling.BILINEAR)
    if fmt.upper() in ("JPEG", "JPG"):
        fmt = "JPEG"
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _wrap(text: str, width: int, lines: int = 6) -> str:
    words, out, line = text.split(), [], ""
    for word in words:
        if len(line) + len(word) + 1 > width and line:
            out.append(line)
            line = ""
        line = f"{line} {word}".strip()
    if line:
        out.append(line)
    if len(out) > lines:
        out = out[:lines]
        out[-1] += " ..."
    return "\n".join(out)
