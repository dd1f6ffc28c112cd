"""A generation made through an API token says so: "via API token X" on its
page (or "via a revoked API token"), an API badge on its gallery card;
other teams see neither the page nor the token."""

from django.urls import reverse

from playground.accounts.models import ApiToken
from playground.generations.pipeline import create

from tests.helpers import login


def via_token(team, user, token, prompt="a quiet harbour"):
    return create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": prompt},
                       api_token=token)


def test_the_detail_page_and_the_gallery_name_the_token_a_run_came_through(client_in, team, user, bob):
    token, _ = ApiToken.issue(user, team, "nightly")
    gen = via_token(team, user, token)
    plain = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a pier"})
    page = client_in.get(gen.get_absolute_url()).content.decode()
    assert 'data-testid="via-api-token"' in page and "via API token <strong>nightly</strong>" in page
    assert f"(...{token.last4})" in page
    assert "via-api-token" not in client_in.get(plain.get_absolute_url()).content.decode()
    # A teammate sees the shared generation and where it came from.
    assert "via API token <strong>nightly</strong>" in login(bob).get(gen.get_absolute_url()).content.decode()
    gallery = client_in.get(reverse("gallery")).content.decode()
    assert gallery.count('data-testid="api-badge"') == 1
    card = gallery.split(f'id="gen-{gen.uuid}"')[1].split("</li>")[0]
    assert 'data-testid="api-badge"' in card

    token.revoke()
    page = client_in.get(gen.get_absolute_url()).content.decode()
    assert "via a revoked API token" in page and "nightly" not in page.split('data-testid="via-api-token"')[1][:200]


def test_another_team_sees_neither_the_generation_nor_its_token(team, user, other_user, other_team):
    token, _ = ApiToken.issue(user, team, "secret-project")
    gen = via_token(team, user, token)
    outsider = login(other_user)
    response = outsider.get(gen.get_absolute_url())
    assert response.status_code == 404 and "secret-project" not in response.content.decode()
    assert "secret-project" not in outsider.get(reverse("gallery") + "?scope=team").content.decode()
