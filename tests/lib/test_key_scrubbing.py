"""A provider echoing the key back, in any spelling, does not get it stored
or shown (RELIABILITY 7); provider messages are stored capped."""

import re

import pytest

from playground.generations.pipeline import create
from playground.lib.scrub import KEY_REMOVED, PROVIDER_MESSAGE_MAX, scrub
from playground.accounts.models import Endpoint, ProviderCredential
from playground.generations.models import Generation
from playground.providers.errors import ProviderError

from tests.helpers import run_tasks, step_job
from tests.lib.egress_server import RecordingServer

KEY = "kie-live-Q7x9Lm2Pz8Rt4Vw6"
NORM = re.sub(r"[^a-z0-9]", "", KEY.lower())


def leaks(text: str) -> bool:
    """Any 8 of the key's characters in a row, ignoring case and separators."""
    norm = re.sub(r"[^a-z0-9]", "", (text or "").lower())
    return any(NORM[i:i + 8] in norm for i in range(len(NORM) - 7))


def dashed(s, every=3):
    return "-".join(s[i:i + every] for i in range(0, len(s), every))


ECHOES = {
    "upper-cased": lambda auth: f"Invalid token {auth.upper()}",
    "lower-cased": lambda auth: f"invalid token {auth.lower()}",
    "dashes inserted": lambda auth: f"Invalid token {dashed(auth.split()[-1])}",
    "spaced and dotted": lambda auth: "Invalid token " + " . ".join(auth.split()[-1]),
    "partially echoed": lambda auth: f"Invalid token ...{auth.split()[-1][6:20]}...",
    "url-style": lambda auth: f"Invalid token {auth.split()[-1].replace('-', '_').swapcase()}",
}


@pytest.fixture
def echo_server(sandbox, settings):
    with RecordingServer() as s:
        settings.DOWNLOAD_ALLOWED_PRIVATE_HOSTS = [*settings.DOWNLOAD_ALLOWED_PRIVATE_HOSTS, s.host]
        yield s


def use_server(team, server):
    cred = ProviderCredential(team=team, provider="kie", base_url=server.url + "/kie")
    cred.set_key(KEY)
    cred.save()


def new_job(team, user):
    return create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a pine cone"})


@pytest.mark.parametrize("spelling", list(ECHOES))
def test_a_key_echoed_in_any_spelling_is_neither_stored_nor_shown(client_in, team, user, echo_server, spelling):
    echo = ECHOES[spelling]
    echo_server.answer = lambda h: (401, {"code": 401, "msg": echo(h.headers["Authorization"])})
    use_server(team, echo_server)
    gen = new_job(team, user)
    run_tasks(until=gen)
    # The provider really did echo it, and got the real key.
    assert echo_server.requests and echo_server.requests[0]["headers"]["Authorization"] == f"Bearer {KEY}"
    assert (gen.status, gen.error_kind) == (Generation.FAILED, "auth")
    assert KEY_REMOVED in gen.error_message
    for stored in (gen.error_message, gen.error_code, gen.error_field, gen.phase):
        assert not leaks(stored), stored
    page = client_in.get(gen.get_absolute_url()).content.decode()
    assert "Invalid token" in page or "invalid token" in page
    assert not leaks(page)


def test_a_key_echoed_in_a_retried_error_stays_out_of_the_phase_text(team, user, echo_server):
    echo_server.answer = lambda h: (503, {"code": 503, "msg": f"Overloaded for {dashed(KEY.upper(), 2)}"})
    use_server(team, echo_server)
    gen = new_job(team, user)
    assert step_job(gen) != "not due"
    gen.refresh_from_db()
    assert gen.status == Generation.QUEUED and "retrying in" in gen.phase
    assert not leaks(gen.phase)


def test_a_long_provider_message_is_stored_capped(team, user, echo_server):
    echo_server.answer = lambda h: (400, {"code": 400, "msg": "The request was not accepted. " * 400 + KEY})
    use_server(team, echo_server)
    gen = new_job(team, user)
    run_tasks(until=gen)
    assert gen.status == Generation.FAILED
    assert gen.error_message.startswith("The request was not accepted.")
    assert len(gen.error_message) <= PROVIDER_MESSAGE_MAX


def test_scrub_removes_every_spelling_and_keeps_ordinary_text():
    assert scrub(f"token {KEY.upper()} refused", KEY) == f"token {KEY_REMOVED} refused"
    assert KEY_REMOVED in scrub(dashed(KEY, 4), KEY)
    assert KEY_REMOVED in scrub("key " + " ".join(KEY), KEY)
    assert not leaks(scrub(f"ends in {KEY[-12:]}", KEY))
    assert not leaks(scrub(f"a={KEY[:10].upper()}, b={KEY[10:]}", KEY))
    plain = "The prompt was refused by moderation: live images of a forest at dawn are fine."
    assert scrub(plain, KEY) == plain


def test_scrubbing_covers_the_error_code_and_field_too():
    err = ProviderError("validation", "bad", code=f"E-{KEY.upper()}", field=KEY.lower())
    err = Endpoint("kie", "https://api.kie.ai", KEY, "team").scrubbed(err)
    assert not leaks(err.code) and not leaks(err.field) and not leaks(str(err))
