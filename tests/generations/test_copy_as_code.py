"""'Copy as code' gives the exact request, runnable, with the key as a placeholder."""

import json
import os
import shutil
import subprocess
import sys

from django.urls import reverse
import pytest

from playground.generations.pipeline import create
from playground.accounts.models import ProviderCredential
from playground.generations.snippets import snippets

PARAMS = {"prompt": "a hot air balloon", "image_size": "landscape_4_3", "num_inference_steps": 25, "seed": 11}


@pytest.fixture
def gen(sandbox, team, user):
    return create.create(team=team, owner=user, provider="kie", model="seedream-v4", params=PARAMS)


def test_the_snippets_hold_the_exact_request_and_no_key(gen, team, sandbox):
    cred = ProviderCredential(team=team, provider="kie", base_url=sandbox.url + "/kie")
    cred.set_key("team-secret-key-9876")
    cred.save()
    code = snippets(gen)
    for text in code.values():
        assert f"{sandbox.url}/kie/api/v1/seedream/generate" in text
        assert "team-secret-key-9876" not in text and "9876" not in text
        assert "KIE_API_KEY" in text
        assert "landscape_4_3" in text and "a hot air balloon" in text


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
def test_the_curl_snippet_runs_against_the_sandbox(gen):
    out = subprocess.run(["sh", "-c", snippets(gen)["curl"]], env={**os.environ, "KIE_API_KEY": "sandbox-key"},
                         capture_output=True, text=True, timeout=30)
    body = json.loads(out.stdout)
    assert body["code"] == 200 and body["data"]["taskId"].startswith("task_")


def test_the_python_snippet_runs_against_the_sandbox(gen):
    out = subprocess.run([sys.executable, "-c", snippets(gen)["python"]], env={**os.environ, "KIE_API_KEY": "sandbox-key"},
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("200 ") and "taskId" in out.stdout


def test_the_detail_page_shows_all_three_snippets(client_in, gen):
    html = client_in.get(reverse("generation", args=[gen.uuid])).content.decode()
    assert "Copy as code" in html
    for lang in ("curl", "python", "javascript"):
        assert f'data-lang="{lang}"' in html
    assert "process.env.KIE_API_KEY" in html
