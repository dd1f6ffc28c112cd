"""Keys out of provider text (RELIABILITY 7): scrub() removes a team's key
from a message in any spelling a provider may echo, and provider_text()
scrubs and caps a provider's text before it is stored or shown.
"""

from __future__ import annotations

import re


KEY_REMOVED = "[key removed]"
PROVIDER_MESSAGE_MAX = 500
_MIN_RUN = 8  # this many of the key's characters in a row are taken for the key
_MAX_GAP = 3  # separators allowed between two of them ("ab-cd", "a b", "a. b")


def scrub(text: str, key: str) -> str:
    """text without the key in any spelling a provider may echo: any case,
    separators inserted, or a part of it (a run of at least 8 of its
    characters, compared without case and separators)."""
    if not text or not key:
        return text
    norm_key = "".join(c for c in key.lower() if c.isalnum())
    if len(norm_key) < 4:
        return re.sub(re.escape(key), KEY_REMOVED, text, flags=re.IGNORECASE) if len(key) >= 4 else text
    run = min(_MIN_RUN, len(norm_key))
    grams = {norm_key[i:i + run] for i in range(len(norm_key) - run + 1)}
    # The text's letters and digits, lower-cased, with where each came from;
    # a segment breaks where more than _MAX_GAP other characters come between.
    segments, current, last = [], [], None
    for i, c in enumerate(text):
        if not c.isalnum():
            continue
        if last is not None and i - last - 1 > _MAX_GAP:
            segments.append(current)
            current = []
        current.append((c.lower(), i))
        last = i
    if current:
        segments.append(current)
    spans = []
    for seg in segments:
        s = "".join(c for c, _ in seg)
        i = 0
        while i <= len(s) - run:
            if s[i:i + run] in grams:
                j = i + run
                while j < len(s) and s[i:j + 1] in norm_key:
                    j += 1
                spans.append((seg[i][1], seg[j - 1][1] + 1))
                i = j
            else:
                i += 1
    if not spans:
        # Case-insensitive exact match still applies to keys of odd shapes.
        return re.sub(re.escape(key), KEY_REMOVED, text, flags=re.IGNORECASE)
    out, pos = [], 0
    for start, end in sorted(spans):
        if start < pos:
            continue
        out.append(text[pos:start])
        out.append(KEY_REMOVED)
        pos = end
    out.append(text[pos:])
    return re.sub(re.escape(key), KEY_REMOVED, "".join(out), flags=re.IGNORECASE)


def provider_text(text: str | None, key: str, limit: int = PROVIDER_MESSAGE_MAX) -> str | None:
    """Provider text fit to store or show: the key scrubbed, then capped."""
    if text is None:
        return None
    # Cut a huge body first (scrubbing is linear, but needn't read a
    # megabyte); what the cut leaves of a key at the end is cut below.
    text = scrub(str(text)[: limit * 4], key)
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text
