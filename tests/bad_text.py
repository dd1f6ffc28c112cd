"""Request bodies carrying text that is not valid Unicode, as a client can
send them (RELIABILITY 11): a lone surrogate, and a NUL.

A browser never sends a lone surrogate, and Django decodes a urlencoded body
as UTF-8 with errors="replace"; but a multipart body that names its own
charset is decoded with it, so "charset=utf-7" carries one ("+2AA-" is
U+D800). JSON carries one with the escape "\\ud800"."""

from __future__ import annotations

SURROGATE = "a\ud800b"  # U+D800 alone, at character 2
NUL_TEXT = "a\x00b"
BOUNDARY = "bad-text-boundary"


def multipart(fields: dict, files: dict | None = None, charset: str = "utf-7") -> tuple[bytes, str]:
    """(body, content type) of a multipart form in `charset`: fields {name:
    text or [texts]}, files {name: (file name, bytes, content type)}."""
    out = b""
    for name, value in fields.items():
        for v in value if isinstance(value, list) else [value]:
            out += (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                    + str(v).encode(charset) + b"\r\n")
    for name, (filename, content, ctype) in (files or {}).items():
        out += (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: {ctype}\r\n\r\n").encode() + content + b"\r\n"
    out += f"--{BOUNDARY}--\r\n".encode()
    return out, f"multipart/form-data; boundary={BOUNDARY}; charset={charset}"
