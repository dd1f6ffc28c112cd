"""The KIE.ai adapter: the request each model sends, checked field by field
against shared/providers/kie.md; every documented status shape; every HTTP
status mapped to one error kind. Over real HTTP against the sandbox."""

from __future__ import annotations

from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import io
import json
import threading
import time

import httpx
import pytest
from PIL import Image

from playground.providers.errors import ProviderError
from playground.providers.exchange import ImageInput
from playground.providers.kie import KieAdapter, service_of

from tests.helpers import finish_provider_jobs, start_sandbox

PHOTO = "https://app.example/inputs/public/abc"


def photo_bytes(size=(300, 200), color=(30, 120, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def image(url=PHOTO) -> ImageInput:
    return ImageInput(url=url, content_type="image/png", load=photo_bytes)


@pytest.fixture
def adapter(sandbox):
    return KieAdapter(base_url=sandbox.url + "/kie", api_key="sandbox-key")


class _Files(BaseHTTPRequestHandler):
    """Serves input images for the sandbox to fetch, and records POSTs (callbacks)."""

    files: dict = {}
    posts: list = []

    def do_GET(self):
        body = self.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def files():
    handler = type("Files", (_Files,), {"files": {"/photo.png": photo_bytes(), "/notes.txt": b"not an image"},
                                         "posts": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield type("Served", (), {"url": f"http://127.0.0.1:{server.server_port}", "posts": handler.posts})
    server.shutdown()
    server.server_close()


def wait_done(adapter, model, task_id, timeout=10.0):
    deadline = time.monotonic() + timeout
    finish_provider_jobs()  # no waiting for the sandbox's latency
    while True:
        outcome = adapter.check(model, task_id)
        if outcome.finished or time.monotonic() > deadline:
            return outcome
        time.sleep(0.1)


def body_of(model, params, images=None, callback_url=None):
    adapter = KieAdapter(base_url="https://api.kie.ai", api_key="k")
    req = adapter.build_request(model, params, images=images, callback_url=callback_url)
    assert req.method == "POST"
    assert req.headers["Content-Type"] == "application/json"
    return req.url, req.json


# --- the request of each model, field by field ---------------------------------------


def test_it_sends_seedream_fields_as_the_contract_names_them():
    url, body = body_of("seedream-v4", {"prompt": "a red fox in snow", "image_size": "portrait_4_3",
                                        "image_resolution": "2K", "num_inference_steps": 40, "seed": 9})
    assert url == "https://api.kie.ai/api/v1/seedream/generate"
    assert body == {"prompt": "a red fox in snow", "image_size": "portrait_4_3", "image_resolution": "2K",
                    "num_inference_steps": 40, "seed": 9}


def test_it_sends_nano_banana_pixels_and_steps_and_no_image_when_generating():
    url, body = body_of("nano-banana", {"prompt": "a teapot", "model": "google/nano-banana", "width": 800,
                                        "height": 600, "steps": 25, "seed": 1, "image": "ignored-id"},
                        images={"image": image()})
    assert url == "https://api.kie.ai/api/v1/nano-banana/generate"
    assert body == {"prompt": "a teapot", "model": "google/nano-banana", "width": 800, "height": 600,
                    "steps": 25, "seed": 1}


def test_it_sends_the_image_to_edit_as_a_list_of_urls_for_nano_banana_edit():
    _, body = body_of("nano-banana", {"prompt": "make the teapot blue", "model": "google/nano-banana-edit",
                                      "image": "id", "width": 1024, "height": 1024, "steps": 30},
                      images={"image": image()})
    assert body == {"prompt": "make the teapot blue", "model": "google/nano-banana-edit", "image_urls": [PHOTO],
                    "width": 1024, "height": 1024, "steps": 30}


def test_it_uses_the_configured_name_for_input_fields_the_contract_leaves_open(settings):
    settings.KIE_INPUT_FIELDS = {"nano-banana-edit": "imageUrls", "recraft": "image"}
    _, body = body_of("nano-banana", {"prompt": "p", "model": "google/nano-banana-edit", "image": "id"},
                      images={"image": image()})
    assert body == {"prompt": "p", "model": "google/nano-banana-edit", "imageUrls": [PHOTO]}
    _, body = body_of("recraft-upscale", {"image": "id"}, images={"image": image()})
    assert body == {"image": PHOTO}


def test_it_sends_qwen_fields():
    url, body = body_of("qwen", {"prompt": "a shop sign that says OPEN", "image_size": "landscape_4_3",
                                 "num_inference_steps": 12, "acceleration_level": "regular"})
    assert url == "https://api.kie.ai/api/v1/qwen/generate"
    assert body == {"prompt": "a shop sign that says OPEN", "image_size": "landscape_4_3",
                    "num_inference_steps": 12, "acceleration_level": "regular"}


def test_it_sends_flux_kontext_fields_with_the_image_as_one_url():
    url, body = body_of("flux-kontext", {"prompt": "turn the sky orange", "model": "flux-kontext-max",
                                         "aspect_ratio": "21:9", "image": "id", "prompt_upsampling": True, "seed": 4},
                        images={"image": image()}, callback_url="https://app.example/hook/t0k")
    assert url == "https://api.kie.ai/api/v1/flux/kontext/generate"
    assert body == {"prompt": "turn the sky orange", "model": "flux-kontext-max", "aspectRatio": "21:9",
                    "imageUrl": PHOTO, "promptUpsampling": True, "seed": 4,
                    "callBackUrl": "https://app.example/hook/t0k"}


def test_it_sends_gpt4o_image_fields_with_reference_images_as_a_list():
    url, body = body_of("gpt4o-image", {"prompt": "a poster of a mountain", "size": "3:2", "n_variants": 4,
                                        "is_enhance": True, "image": "id"}, images={"image": image()})
    assert url == "https://api.kie.ai/api/v1/gpt4o-image/generate"
    assert body == {"prompt": "a poster of a mountain", "size": "3:2", "nVariants": 4, "isEnhance": True,
                    "filesUrl": [PHOTO]}


def test_it_sends_midjourney_fields_and_the_source_image_only_for_img2img():
    url, body = body_of("midjourney", {"prompt": "a castle on a hill", "task_type": "mj_txt2img", "version": "6.1",
                                       "speed": "Relax", "stylization": 250, "weirdness": 1000, "image": "id"},
                        images={"image": image()})
    assert url == "https://api.kie.ai/api/v1/mj/generate"
    assert body == {"prompt": "a castle on a hill", "taskType": "mj_txt2img", "version": "6.1", "speed": "Relax",
                    "stylization": 250, "weirdness": 1000}
    _, body = body_of("midjourney", {"prompt": "a castle", "task_type": "mj_img2img", "image": "id",
                                     "version": "Niji6"}, images={"image": image()})
    assert body == {"prompt": "a castle", "taskType": "mj_img2img", "fileUrls": [PHOTO], "version": "Niji6"}


def test_it_offers_midjourney_images_only_and_says_why_video_is_left_out():
    from playground.providers.kie import MODELS

    task = MODELS["midjourney"].param("task_type")
    assert [v for v, _ in task.choice_pairs()] == ["mj_txt2img", "mj_img2img"]
    assert "video" in task.help


def test_it_sends_the_recraft_utilities_an_image_url_and_no_prompt():
    url, body = body_of("recraft-remove-background", {"image": "id"}, images={"image": image()})
    assert (url, body) == ("https://api.kie.ai/api/v1/recraft/remove-background", {"imageUrl": PHOTO})
    url, body = body_of("recraft-upscale", {"image": "id"}, images={"image": image()})
    assert (url, body) == ("https://api.kie.ai/api/v1/recraft/upscale", {"imageUrl": PHOTO})


@pytest.mark.parametrize("model, status_path", [
    ("seedream-v4", "/api/v1/seedream/record-info"),
    ("nano-banana", "/api/v1/nano-banana/record-info"),
    ("qwen", "/api/v1/qwen/record-info"),
    ("flux-kontext", "/api/v1/flux/kontext/record-info"),
    ("gpt4o-image", "/api/v1/gpt4o-image/record-info"),
    ("midjourney", "/api/v1/mj/record-info"),
    ("recraft-remove-background", "/api/v1/recraft/record-info"),
    ("recraft-upscale", "/api/v1/recraft/record-info"),
])
def test_it_asks_each_models_service_for_the_status(model, status_path):
    req = KieAdapter(base_url="https://api.kie.ai", api_key="k").status_request(model, "task 1/x")
    assert req.url == f"https://api.kie.ai{status_path}?taskId=task%201%2Fx"
    assert service_of("/api/v1/flux/kontext/generate") == "flux/kontext"


# --- credits: one table ---------------------------------------------------------------


@pytest.mark.parametrize("model, params, credits", [
    ("seedream-v4", {}, "3.5"),
    ("nano-banana", {"model": "google/nano-banana-edit"}, "4"),
    ("qwen", {}, "6"),
    ("qwen", {"acceleration_level": "regular"}, "7"),
    ("qwen", {"acceleration_level": "high"}, "8"),
    ("flux-kontext", {"model": "flux-kontext-pro"}, "8"),
    ("flux-kontext", {"model": "flux-kontext-max"}, "12"),
    ("gpt4o-image", {"n_variants": 4}, "10"),
    ("midjourney", {}, "25"),
    ("recraft-remove-background", {}, "2"),  # the top of the documented 1-2
    ("recraft-upscale", {}, "4"),  # the top of the documented 2-4
])
def test_it_prices_each_model_and_option_from_the_table(model, params, credits):
    assert KieAdapter.model(model).estimate(params) == Decimal(credits)


def test_it_takes_credit_overrides_from_settings(settings):
    settings.KIE_CREDITS = {"qwen:high": 9, "recraft-upscale": "4"}
    assert KieAdapter.model("qwen").estimate({"acceleration_level": "high"}) == Decimal("9")
    assert KieAdapter.model("qwen").estimate({}) == Decimal("6")
    assert KieAdapter.model("recraft-upscale").estimate({}) == Decimal("4")


# --- every model over HTTP: accepted, finished, with all its images ------------------------


@pytest.mark.parametrize("model, params, count", [
    ("nano-banana", {"prompt": "a teapot", "model": "google/nano-banana", "width": 640, "height": 480, "steps": 20}, 1),
    ("nano-banana", {"prompt": "a blue teapot", "model": "google/nano-banana-edit", "image": "x"}, 1),
    ("qwen", {"prompt": "a sign that says OPEN", "image_size": "square", "acceleration_level": "high"}, 1),
    ("flux-kontext", {"prompt": "a lake", "model": "flux-kontext-max", "aspect_ratio": "9:16",
                      "prompt_upsampling": True}, 1),
    ("flux-kontext", {"prompt": "the lake at night", "image": "x"}, 1),
    ("gpt4o-image", {"prompt": "a poster of a whale", "size": "2:3", "n_variants": 2, "is_enhance": False}, 2),
    ("gpt4o-image", {"prompt": "the whale in blue", "n_variants": 4, "image": "x"}, 4),
    ("midjourney", {"prompt": "a castle", "task_type": "mj_txt2img", "version": "Niji6", "speed": "Turbo",
                    "stylization": 1000, "weirdness": 3000}, 4),
    ("midjourney", {"prompt": "a castle at dawn", "task_type": "mj_img2img", "image": "x"}, 4),
    ("recraft-remove-background", {"image": "x"}, 1),
    ("recraft-upscale", {"image": "x", "prompt": "a harbour"}, 1),
])
def test_the_sandbox_accepts_each_models_request_and_returns_all_images(adapter, files, model, params, count):
    images = {"image": image(files.url + "/photo.png")} if "image" in params else None
    submitted = adapter.submit(model, params, images=images)
    assert submitted.state == "pending" and submitted.job_id.startswith("task_")
    done = wait_done(adapter, model, submitted.job_id)
    assert done.state == "succeeded", done.error
    assert len(done.image_urls) == count == len(set(done.image_urls))
    assert httpx.get(done.image_urls[-1]).headers["content-type"] == "image/png"


def test_it_sees_twice_the_input_size_from_upscale_and_transparency_from_background_removal(adapter, files):
    up = adapter.submit("recraft-upscale", {"image": "x"}, images={"image": image(files.url + "/photo.png")})
    cut = adapter.submit("recraft-remove-background", {"image": "x"}, images={"image": image(files.url + "/photo.png")})
    big = Image.open(io.BytesIO(httpx.get(wait_done(adapter, "recraft-upscale", up.job_id).image_urls[0]).content))
    assert big.size == (600, 400)
    clear = Image.open(io.BytesIO(httpx.get(wait_done(adapter, "recraft-remove-background", cut.job_id).image_urls[0]).content))
    assert clear.format == "PNG" and clear.mode == "RGBA" and clear.size == (300, 200)
    assert clear.getpixel((0, 0))[3] == 0  # the plain background is gone


def test_the_callback_carries_the_same_images_as_record_info(files, tmp_path):
    sb = start_sandbox(tmp_path, callbacks=True, latency=0.2)
    try:
        adapter = KieAdapter(base_url=sb.url + "/kie", api_key="sandbox-key")
        sent = adapter.submit("gpt4o-image", {"prompt": "three pears", "n_variants": 2},
                              callback_url=files.url + "/hook")
        status = wait_done(adapter, "gpt4o-image", sent.job_id)
        deadline = time.monotonic() + 5
        while not any(adapter.parse_callback(p) == sent.job_id for p in files.posts):
            assert time.monotonic() < deadline, "no callback arrived"
            time.sleep(0.05)
        hook = next(p for p in files.posts if adapter.parse_callback(p) == sent.job_id)
        assert len(hook["data"]["resultUrls"]) == len(status.image_urls) == 2
        assert [u.split("?")[0] for u in hook["data"]["resultUrls"]] == [u.split("?")[0] for u in status.image_urls]
    finally:
        sb.stop()


# --- status shapes (the contract's Ambiguities), parsed from hand-built responses ------------


def parse(body, status=200):
    adapter = KieAdapter(base_url="https://api.kie.ai", api_key="k")
    return adapter.parse_status(httpx.Response(status, json=body))


def test_it_reads_a_bare_status_with_image_url():
    out = parse({"taskId": "t1", "successFlag": 1, "imageUrl": "https://r/1.png",
                 "createTime": "2025-12-07T10:00:00Z", "completeTime": "2025-12-07T10:05:00Z"})
    assert (out.state, out.job_id, out.image_urls) == ("succeeded", "t1", ["https://r/1.png"])


def test_it_reads_a_wrapped_status_with_result_urls():
    out = parse({"code": 200, "msg": "success",
                 "data": {"taskId": "t2", "successFlag": 1, "resultUrls": ["https://r/1.png", "https://r/2.png"]}})
    assert out.image_urls == ["https://r/1.png", "https://r/2.png"]


def test_it_merges_and_deduplicates_every_place_an_image_url_may_be():
    out = parse({"code": 200, "data": {
        "taskId": "t3", "successFlag": 1, "imageUrl": "https://r/1.png", "resultUrls": ["https://r/1.png", "https://r/2.png"],
        "response": {"resultUrls": ["https://r/2.png", "https://r/3.png"]}}})
    assert out.image_urls == ["https://r/1.png", "https://r/2.png", "https://r/3.png"]


def test_it_reads_bare_response_result_urls():
    out = parse({"taskId": "t4", "successFlag": "1", "response": {"resultUrls": ["https://r/9.png"]}})
    assert out.image_urls == ["https://r/9.png"]


@pytest.mark.parametrize("wrapped", [False, True])
def test_it_maps_each_success_flag(wrapped):
    def status(record):
        return parse({"code": 200, "msg": "success", "data": record} if wrapped else record)

    assert status({"taskId": "t", "successFlag": 0}).state == "generating"
    failed = status({"taskId": "t", "successFlag": 2, "errorMessage": "The model refused."})
    assert (failed.state, failed.error.kind, failed.error.message) == ("failed", "failed", "The model refused.")
    creation = status({"taskId": "t", "successFlag": 3})
    assert (creation.state, creation.error.code) == ("failed", "creation_failed")


def test_it_calls_a_success_without_any_image_a_bad_response():
    with pytest.raises(ProviderError) as e:
        parse({"code": 200, "data": {"taskId": "t", "successFlag": 1}})
    assert e.value.kind == "bad_response"


@pytest.mark.parametrize("body", [{"taskId": "t", "successFlag": 7}, {"code": 200, "data": {"taskId": "t"}}])
def test_it_calls_an_unknown_status_a_bad_response(body):
    with pytest.raises(ProviderError) as e:
        parse(body)
    assert e.value.kind == "bad_response"


def test_it_reads_an_error_code_inside_a_200_envelope():
    with pytest.raises(ProviderError) as e:
        parse({"code": 455, "msg": "Service unavailable", "data": None})
    assert (e.value.kind, e.value.status) == ("unavailable", 455)


# --- HTTP status codes over HTTP against the sandbox ------------------------------------


def error_of(call):
    with pytest.raises(ProviderError) as e:
        call()
    return e.value


def unchecked(adapter, model, params, **sent):
    """What KIE answers to values our declarations refuse before sending
    (ModelSpec.validate, tested in test_provider_http_path.py): the request
    built for valid params, with `sent` put into its body, sent over the
    same HTTP path as submit."""
    req = adapter.build_request(model, params)
    req.json.update(sent)
    return lambda: adapter._request(req, model=model)


def test_it_maps_400_bad_parameters_to_validation(adapter):
    e = error_of(unchecked(adapter, "qwen", {"prompt": "a boat"}, seed="seven"))
    assert (e.kind, e.status, e.field) == ("validation", 400, "seed")


def test_it_maps_401_to_auth(sandbox):
    bad = KieAdapter(base_url=sandbox.url + "/kie", api_key="wrong-key")
    e = error_of(lambda: bad.submit("midjourney", {"prompt": "a fox", "task_type": "mj_txt2img"}))
    assert (e.kind, e.status) == ("auth", 401)


def test_it_maps_402_to_insufficient_credits(adapter):
    e = error_of(lambda: adapter.submit("flux-kontext", {"prompt": "a lake [402]", "model": "flux-kontext-max"}))
    assert (e.kind, e.status, e.message) == ("insufficient_credits", 402, "Insufficient Credits")
    assert not e.retryable


def test_it_maps_404_for_a_task_the_service_does_not_know_to_not_found(adapter):
    e = error_of(lambda: adapter.check("qwen", "task_0000000000"))
    assert (e.kind, e.status) == ("not_found", 404)
    # A task exists only under its own service.
    task = adapter.submit("gpt4o-image", {"prompt": "a kite"}).job_id
    assert error_of(lambda: adapter.check("midjourney", task)).kind == "not_found"


def test_it_maps_422_to_validation_on_the_right_field(adapter):
    e = error_of(unchecked(adapter, "nano-banana", {"prompt": "a kite"}, steps=10))
    assert (e.kind, e.status, e.field) == ("validation", 422, "steps")
    e = error_of(unchecked(adapter, "midjourney", {"prompt": "a kite", "task_type": "mj_txt2img"}, weirdness=3001))
    assert (e.status, e.field) == (422, "weirdness")
    e = error_of(unchecked(adapter, "gpt4o-image", {"prompt": "a kite"}, nVariants=3))
    assert (e.status, e.field) == (422, "n_variants")


def test_it_maps_a_missing_input_image_to_validation(adapter):
    e = error_of(lambda: adapter.submit("nano-banana", {"prompt": "edit", "model": "google/nano-banana-edit"}))
    assert (e.kind, e.status) == ("validation", 422)


@pytest.mark.parametrize("path, why", [("/notes.txt", "not an image"), ("/gone.png", "HTTP 404")])
def test_it_maps_an_input_image_the_provider_cannot_use_to_validation(adapter, files, path, why):
    e = error_of(lambda: adapter.submit("recraft-upscale", {"image": "x"}, images={"image": image(files.url + path)}))
    assert (e.kind, e.status, e.field) == ("validation", 422, "image")
    assert why in e.message


def test_it_maps_429_to_rate_limited_with_the_wait(adapter):
    e = error_of(lambda: adapter.submit("qwen", {"prompt": "a field [429]"}))
    assert (e.kind, e.status, e.retry_after) == ("rate_limited", 429, 1.0)
    assert e.retryable


def test_it_maps_455_maintenance_to_unavailable(adapter):
    e = error_of(lambda: adapter.submit("recraft-remove-background", {"prompt": "[455]", "image": "x"},
                                        images={"image": image()}))
    assert (e.kind, e.status) == ("unavailable", 455)
    assert e.retryable


def test_it_maps_500_to_server_error(adapter):
    e = error_of(lambda: adapter.submit("midjourney", {"prompt": "a bridge [500]", "task_type": "mj_txt2img"}))
    assert (e.kind, e.status) == ("server_error", 500)
    assert e.retryable


@pytest.mark.parametrize("marker, code", [("[fail]", "generation_failed"), ("[creation-fail]", "creation_failed")])
def test_it_reports_a_task_that_failed_at_the_provider(adapter, marker, code):
    task = adapter.submit("qwen", {"prompt": f"a meadow {marker}"}).job_id
    out = wait_done(adapter, "qwen", task)
    assert (out.state, out.error.kind, out.error.code) == ("failed", "failed", code)
