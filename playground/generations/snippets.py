""""Copy as code": a generation's exact request as curl, Python (httpx) and
JavaScript (fetch). The key is always a placeholder (RELIABILITY 7)."""

from __future__ import annotations

import json
import shlex

from playground.accounts.models import Endpoint
from playground.providers.exchange import ImageInput, PreparedRequest

from .models import Generation


def _placeholder_images(gen: Generation) -> dict:
    return {
        name: _Placeholder(url=img.signed_url() if img else "https://example.com/your-image.png",
                           content_type=img.content_type if img else "image/png", load=lambda: b"")
        for name, img in gen.input_images().items()
    }


class _Placeholder(ImageInput):
    def data_url(self) -> str:
        return f"data:{self.content_type};base64,<BASE64 OF YOUR IMAGE>"


def request_for(gen: Generation) -> tuple[PreparedRequest, str]:
    """The request as the adapter builds it, and the env var holding the key."""
    base_url = Endpoint.resolve(gen.team, gen.provider, with_key=False).base_url
    adapter = gen.adapter_class(base_url=base_url, api_key="")
    req = adapter.build_request(gen.model, gen.params, images=_placeholder_images(gen))
    return req, f"{gen.provider.upper()}_API_KEY"


def snippets(gen: Generation) -> dict[str, str]:
    req, var = request_for(gen)
    auth_value_sh = f"{req.auth_scheme}${var}"
    headers = {k: v for k, v in req.headers.items()}
    out = {}

    # curl
    lines = [f"curl -X {req.method} {shlex.quote(req.url)}", f'  -H "{req.auth_header}: {auth_value_sh}"']
    if req.files is not None or req.data is not None:
        for k, v in (req.data or {}).items():
            lines.append(f"  -F {shlex.quote(f'{k}={v}')}")
        for name, (filename, _, ctype) in req.files or []:
            lines.append(f"  -F {shlex.quote(f'{name}=@{filename};type={ctype}')}")
    else:
        for k, v in headers.items():
            lines.append(f"  -H {shlex.quote(f'{k}: {v}')}")
        if req.json is not None:
            lines.append(f"  -d {shlex.quote(json.dumps(req.json, ensure_ascii=False))}")
    out["curl"] = " \\\n".join(lines)

    # Python (httpx)
    py = ["import os", "", "import httpx", ""]
    py.append(f'headers = {{"{req.auth_header}": "{req.auth_scheme}" + os.environ["{var}"]}}')
    if req.files is not None or req.data is not None:
        py.append(f"data = {json.dumps(req.data or {}, indent=4)}")
        files = ", ".join(f'("{n}", open("{fn}", "rb"))' for n, (fn, _, _) in (req.files or []))
        py.append(f"files = [{files}]")
        py.append(f'response = httpx.request("{req.method}", "{req.url}", headers=headers, data=data, files=files, timeout=120)')
    else:
        py.append(f"headers.update({json.dumps(headers)})")
        if req.json is not None:
            py.append(f"body = {_py_literal(req.json)}")
            py.append(f'response = httpx.request("{req.method}", "{req.url}", headers=headers, json=body, timeout=120)')
        else:
            py.append(f'response = httpx.request("{req.method}", "{req.url}", headers=headers, timeout=120)')
    py.append("print(response.status_code, response.json())")
    out["python"] = "\n".join(py)

    # JavaScript (fetch)
    js_headers = {req.auth_header: f"{req.auth_scheme}${{process.env.{var}}}"}
    js = []
    if req.files is not None or req.data is not None:
        js.append("const form = new FormData();")
        for k, v in (req.data or {}).items():
            js.append(f"form.append({json.dumps(k)}, {json.dumps(str(v))});")
        for name, (filename, _, _) in req.files or []:
            js.append(f"form.append({json.dumps(name)}, yourImageBlob, {json.dumps(filename)});")
        body = "form"
    else:
        js_headers.update(headers)
        body = f"JSON.stringify({json.dumps(req.json, indent=2, ensure_ascii=False)})" if req.json is not None else None
    header_lines = ",\n    ".join(
        f"{json.dumps(k)}: `{v}`" if "${" in v else f"{json.dumps(k)}: {json.dumps(v)}" for k, v in js_headers.items()
    )
    js.append(f"const response = await fetch({json.dumps(req.url)}, {{")
    js.append(f'  method: "{req.method}",')
    js.append(f"  headers: {{\n    {header_lines}\n  }},")
    if body:
        js.append(f"  body: {body},")
    js.append("});")
    js.append("console.log(response.status, await response.json());")
    out["javascript"] = "\n".join(js)
    return out


def _py_literal(value) -> str:
    text = json.dumps(value, indent=4, ensure_ascii=False)
    return text.replace(": true", ": True").replace(": false", ": False").replace(": null", ": None")
