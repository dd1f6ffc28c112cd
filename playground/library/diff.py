"""Two versions side by side: the text (word or line level) and the parameters."""

from __future__ import annotations

from dataclasses import dataclass
import difflib
import re

WORDS = re.compile(r"\s+|[^\s]+")


@dataclass(frozen=True)
class Piece:
    op: str  # "same", "ins", "del"
    text: str


def text_diff(a: str, b: str, level: str = "word") -> list[Piece]:
    """The pieces that turn a into b: kept, deleted (from a) and inserted (from b).
    Words keep their following spaces; lines keep their line breaks."""
    if level == "line":
        left, right = a.splitlines(keepends=True), b.splitlines(keepends=True)
    else:
        left, right = WORDS.findall(a), WORDS.findall(b)
    out: list[Piece] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, left, right, autojunk=False).get_opcodes():
        if op == "equal":
            _add(out, "same", "".join(left[i1:i2]))
            continue
        if op in ("delete", "replace"):
            _add(out, "del", "".join(left[i1:i2]))
        if op in ("insert", "replace"):
            _add(out, "ins", "".join(right[j1:j2]))
    return out


def _add(out, op, text):
    if not text:
        return
    if out and out[-1].op == op:
        out[-1] = Piece(op, out[-1].text + text)
    else:
        out.append(Piece(op, text))


@dataclass(frozen=True)
class ParamChange:
    name: str
    change: str  # "added", "removed", "changed", "same"
    before: object = None
    after: object = None


def params_diff(a: dict, b: dict) -> list[ParamChange]:
    """Every parameter of either version: added, removed, changed or the same (sorted by name)."""
    rows = []
    for name in sorted(set(a) | set(b)):
        if name not in a:
            rows.append(ParamChange(name, "added", None, b[name]))
        elif name not in b:
            rows.append(ParamChange(name, "removed", a[name], None))
        elif a[name] != b[name]:
            rows.append(ParamChange(name, "changed", a[name], b[name]))
        else:
            rows.append(ParamChange(name, "same", a[name], b[name]))
    return rows
