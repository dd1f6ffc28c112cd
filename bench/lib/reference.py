"""The reference: a plain asyncio + httpx script doing the app's work for N
KIE seedream-v4 jobs (submit, poll record-info every --poll seconds, download
the image, decode it with Pillow and write it to disk), with at most
--script-concurrency requests in flight. It pays the imitation provider's
round trip on every request, as the app does."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
import time

from .common import PROMPT, SANDBOX_KEY, p95


async def _reference(base: str, n: int, poll: float, cap: int, out: Path) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=cap, max_keepalive_connections=cap)
    sem = asyncio.Semaphore(cap)
    errors = {"retries": 0, "requests": 0}
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
                                 timeout=httpx.Timeout(60.0), limits=limits) as client:

        async def request(method, url, **kw):
            for attempt in range(8):
                try:
                    async with sem:
                        errors["requests"] += 1
                        resp = await client.request(method, url, **kw)
                    if resp.status_code != 429 and resp.status_code < 500:
                        return resp
                except httpx.TransportError:
                    pass
                errors["retries"] += 1
                await asyncio.sleep(min(5.0, 0.5 * 2 ** attempt))
            raise RuntimeError(f"{method} {url}: gave up")

        async def job(i: int):
            t0 = time.perf_counter()
            resp = await request("POST", "/kie/api/v1/seedream/generate", json={
                "prompt": f"{PROMPT} {i}", "image_size": "square", "image_resolution": "1K",
                "num_inference_steps": 30, "seed": i})
            task_id = resp.json()["data"]["taskId"]
            submitted = time.perf_counter() - t0
            while True:
                await asyncio.sleep(poll)
                body = (await request("GET", "/kie/api/v1/seedream/record-info", params={"taskId": task_id})).json()
                data = body.get("data", body) if isinstance(body, dict) else {}
                flag = data.get("successFlag")
                if flag == 1:
                    url = data.get("imageUrl") or ((data.get("response") or {}).get("resultUrls") or [None])[0]
                    break
                if flag in (2, 3):
                    return False, submitted
            image = await request("GET", url)
            # As the app must: decode the image with Pillow and write it to disk
            # (in a thread, as a script would, so the loop keeps polling).
            await asyncio.to_thread(decode_and_write, image.content, out / f"{i}.png")
            return image.status_code == 200 and bool(image.content), submitted

        t = time.perf_counter()
        results = await asyncio.gather(*(job(i) for i in range(n)), return_exceptions=True)
        elapsed = time.perf_counter() - t
    ok = [r for r in results if isinstance(r, tuple) and r[0]]
    waits = sorted(r[1] for r in ok)
    return {"elapsed": elapsed, "ok": len(ok), "failed": n - len(ok), "retries": errors["retries"],
            "requests": errors["requests"], "submit_wait_p95": p95(waits)}


def decode_and_write(content: bytes, path: Path) -> None:
    """The reference's share of an image's work: every pixel decoded, the file written."""
    from PIL import Image

    with Image.open(io.BytesIO(content)) as im:
        im.load()
    path.write_bytes(content)


def reference(base: str, n: int, poll: float, cap: int, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_reference(base, n, poll, cap, out))
