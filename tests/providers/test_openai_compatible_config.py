"""A second OpenAI-Images-compatible provider defined in configuration only
(OPENAI_COMPATIBLE_PROVIDERS): it gets its own key, label, base URL, model
suggestions and request format, and works against the sandbox."""

import io
import json
import os
from pathlib import Path
import subprocess
import sys

from PIL import Image
import pytest
from django.core.exceptions import ImproperlyConfigured


from playground.generations.pipeline import create
from playground.accounts.models import Endpoint
from playground.generations.models import Generation, InputImage
from playground.providers import registry
from playground.providers.kawai import KawaiAdapter

from tests.helpers import run_tasks

GATEWAY = {
    "key": "gateway", "label": "Image Gateway", "base_url": "https://gateway.example.com/v1/",
    "multipart_images": True, "models": ["gw-image-1", "gw-image-2"],
    "prices": {"*": {"*": "0.25"}},
}


@pytest.fixture
def gateway(settings):
    registry.adapter_classes.cache_clear()
    settings.OPENAI_COMPATIBLE_PROVIDERS = [GATEWAY]
    yield
    registry.adapter_classes.cache_clear()


def test_it_registers_a_provider_from_config_with_its_own_identity(gateway):
    cls = registry.get("gateway")
    assert issubclass(cls, KawaiAdapter)
    assert (cls.key, cls.label, cls.mode) == ("gateway", "Image Gateway", "sync")
    assert cls.default_base_url == "https://gateway.example.com/v1"
    assert cls.multipart_images is True and KawaiAdapter.multipart_images is False
    assert cls.model("generations").param("model").choices == ("gw-image-1", "gw-image-2")
    assert ("gateway", "Image Gateway") in registry.choices()
    assert ("kawai", "Kawai") in registry.choices()
    assert cls.model("generations").estimate({"prompt": "a", "n": 2}) == 0.5  # its own price table


def test_its_playground_page_suggests_its_model_ids(gateway, client_in):
    page = client_in.get("/?provider=gateway&model=generations").content.decode()
    assert "Image Gateway" in page
    assert '<option value="gw-image-2">' in page


def test_it_runs_a_multipart_edit_job_against_the_sandbox(gateway, sandbox, team, user):
    endpoint = Endpoint.resolve(team, "gateway")
    assert (endpoint.source, endpoint.base_url) == ("sandbox", sandbox.url + "/kawai/v1")
    buf = io.BytesIO()
    Image.new("RGB", (80, 80), (20, 160, 90)).save(buf, "PNG")
    source = InputImage.from_bytes(team=team, owner=user, data=buf.getvalue())
    req = endpoint.adapter().build_request("edits", {"prompt": "add a kite", "image": str(source.uuid)},
                                           images={"image": source.as_input()})
    assert req.files and req.files[0][1][1] == source.file.open("rb").read()

    gen = create.create(team=team, owner=user, provider="gateway", model="edits",
                      params={"prompt": "add a kite", "image": str(source.uuid), "n": 2, "size": "128x128"})
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED, gen.error_message
    assert gen.images.count() == 2
    assert gen.credits_used == 0.5


def test_a_config_provider_cannot_take_an_existing_key(settings):
    registry.adapter_classes.cache_clear()
    settings.OPENAI_COMPATIBLE_PROVIDERS = [{**GATEWAY, "key": "kie"}]
    try:
        with pytest.raises(ImproperlyConfigured, match="already taken"):
            registry.adapter_classes()
    finally:
        registry.adapter_classes.cache_clear()


def test_the_environment_defines_the_provider_and_its_key(tmp_path):
    """OPENAI_COMPATIBLE_PROVIDERS and <KEY>_API_KEY / <KEY>_BASE_URL from the environment."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "playground.settings", "DATA_DIR": str(tmp_path),
           "OPENAI_COMPATIBLE_PROVIDERS": json.dumps([GATEWAY]), "GATEWAY_API_KEY": "gw-secret",
           "GATEWAY_BASE_URL": "https://eu.gateway.example.com/v1", "PYTHONPATH": str(root)}
    code = ("import django, json; django.setup(); from django.conf import settings; "
            "from playground.providers import registry; "
            "print(json.dumps([settings.PROVIDER_ENV['gateway'], registry.get('gateway').label]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [
        {"api_key": "gw-secret", "base_url": "https://eu.gateway.example.com/v1"}, "Image Gateway",
    ]

    env["OPENAI_COMPATIBLE_PROVIDERS"] = json.dumps([{"label": "no key"}])
    bad = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "OPENAI_COMPATIBLE_PROVIDERS" in bad.stderr
