"""Provider keys: encrypted at rest, write-only, rotatable, failing closed (RELIABILITY 7)."""

import logging

from cryptography.fernet import Fernet
from django.urls import reverse
import pytest

from playground.generations.pipeline import create
from playground.lib import crypto
from playground.accounts.models import Endpoint, Membership, ProviderCredential
from playground.generations.models import Generation

from tests.helpers import run_tasks

SECRET = "kie-live-SECRET-abcd1234wxyz"


@pytest.fixture
def saved(client_in, team):
    response = client_in.post(reverse("save_credential", args=["kie"]), {"api_key": SECRET, "base_url": ""})
    assert response.status_code == 302
    return ProviderCredential.objects.get(team=team, provider="kie")


def test_the_key_is_encrypted_at_rest_and_only_its_last_4_are_shown(client_in, saved):
    assert SECRET not in saved.api_key_encrypted
    assert saved.api_key() == SECRET
    page = client_in.get(reverse("team")).content.decode()
    assert SECRET not in page and "abcd1234" not in page
    assert "wxyz" in page
    assert "this team&#x27;s key ending in" in page or "this team's key ending in" in page


def test_a_team_key_sends_requests_to_the_real_api_by_default(saved, team):
    endpoint = Endpoint.resolve(team, "kie")
    assert (endpoint.source, endpoint.base_url) == ("team", "https://api.kie.ai")
    assert SECRET not in repr(endpoint) and SECRET not in repr(saved)


def test_leaving_the_key_empty_keeps_it_and_remove_goes_back_to_the_sandbox(client_in, saved, team):
    client_in.post(reverse("save_credential", args=["kie"]), {"api_key": "", "base_url": "https://kie.example.com"})
    saved.refresh_from_db()
    assert saved.api_key() == SECRET and saved.base_url == "https://kie.example.com"
    client_in.post(reverse("save_credential", args=["kie"]), {"remove": "on"})
    assert Endpoint.resolve(team, "kie").source == "sandbox"


def test_an_instance_key_from_the_environment_is_used_when_the_team_has_none(team, settings):
    settings.PROVIDER_ENV = {**settings.PROVIDER_ENV, "kie": {"api_key": "instance-key", "base_url": ""}}
    endpoint = Endpoint.resolve(team, "kie")
    assert (endpoint.source, endpoint.base_url) == ("instance", "https://api.kie.ai")


def test_members_cannot_change_credentials(client, team, other_user):
    Membership.objects.create(team=team, user=other_user, role=Membership.MEMBER)
    client.force_login(other_user)
    client.post(reverse("save_credential", args=["kie"]), {"api_key": "hijack-1234"})
    assert not ProviderCredential.objects.filter(team=team).exists()


def test_keys_survive_rotation_of_the_encryption_key(saved, settings):
    old = list(settings.FIELD_ENCRYPTION_KEYS)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()] + old  # new key first
    assert saved.api_key() == SECRET
    saved.api_key_encrypted = crypto.rotate(saved.api_key_encrypted)
    settings.FIELD_ENCRYPTION_KEYS = settings.FIELD_ENCRYPTION_KEYS[:1]  # old key retired
    assert saved.api_key() == SECRET


def test_a_wrong_encryption_key_fails_closed_and_no_call_is_made(sandbox, saved, team, user, settings, caplog):
    # The team's credential points at the sandbox, so a call would be visible there.
    ProviderCredential.objects.filter(pk=saved.pk).update(base_url=sandbox.url + "/kie")
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    caplog.set_level(logging.DEBUG)
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a violin"})
    run_tasks(until=gen)
    assert (gen.status, gen.error_kind) == (Generation.FAILED, "config")
    assert "enter it again" in gen.error_message
    assert gen.endpoint_source == "" and not gen.provider_job_id
    assert SECRET not in caplog.text


def test_the_key_never_reaches_logs_or_the_queue(sandbox, saved, team, user, caplog):
    """The job's row is its place in the queue: no column of it (nor a log
    line, nor the error shown) holds the key."""
    ProviderCredential.objects.filter(pk=saved.pk).update(base_url=sandbox.url + "/kie")
    caplog.set_level(logging.DEBUG)
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a violin"})
    queued = str(Generation.objects.filter(pk=gen.pk).values().get())
    run_tasks(until=gen)
    assert gen.error_kind == "auth"  # the sandbox does not know this key
    done = str(Generation.objects.filter(pk=gen.pk).values().get())
    assert SECRET not in caplog.text and SECRET not in gen.error_message
    assert SECRET not in queued and SECRET not in done


def test_a_base_url_pointing_inside_our_network_is_refused(client_in, team):
    for url in ("http://169.254.169.254/latest", "http://127.0.0.1:5432", "http://10.1.2.3/v1"):
        client_in.post(reverse("save_credential", args=["kie"]), {"api_key": SECRET, "base_url": url})
        assert not ProviderCredential.objects.filter(team=team).exists(), url


def test_a_base_url_that_turns_private_later_stops_jobs_before_any_call(sandbox, saved, team, user):
    # Saved while public, it now resolves inside: the job fails closed.
    ProviderCredential.objects.filter(pk=saved.pk).update(base_url="http://127.0.0.1:9/internal")
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a fig"})
    run_tasks(until=gen)
    assert (gen.status, gen.error_kind) == (Generation.FAILED, "config")
    assert "refused" in gen.error_message


def test_a_provider_echoing_the_key_does_not_put_it_on_the_page(team):
    from playground.providers.errors import ProviderError

    endpoint = Endpoint("kie", "https://api.kie.ai", SECRET, "team")
    err = endpoint.scrubbed(ProviderError("auth", f"Incorrect API key provided: Bearer {SECRET}"))
    assert SECRET not in err.message and SECRET not in str(err)
    assert "[key removed]" in err.message
