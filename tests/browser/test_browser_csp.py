"""Every page under the Content-Security-Policy in real Chromium: htmx and
the app's scripts keep working, and the browser reports no violation
(Chromium logs each one as a console error, which the `page` fixture
collects in page.problems). Also the team pages added with it: invites,
new teams, the team switcher."""

import re

import pytest
from playwright.sync_api import expect

from playground.accounts.models import Invite, Team

from playground.generations.models import Generation

from tests.browser.helpers import log_in, shot  # noqa: F401

pytestmark = pytest.mark.browser


def watch_documents(page) -> dict:
    """URL -> the Content-Security-Policy header of each page loaded."""
    seen = {}
    page.on("response", lambda r: r.request.resource_type == "document"
            and seen.__setitem__(r.url, r.headers.get("content-security-policy")))
    return seen


def without_expected_404(problems, path):
    return [p for p in problems if not (p.startswith("HTTP 404") and p.endswith(path))]


def test_every_page_works_under_the_policy_with_no_violation(page, worker, team, user):
    user.is_staff = user.is_superuser = True
    user.save()
    documents = watch_documents(page)
    log_in(page)

    # The playground: a model form, the htmx cost estimate following a change.
    page.goto("/?provider=kwiki&model=generate")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Kwiki AI")
    page.get_by_role("textbox", name="Prompt", exact=True).fill("a teapot on a wooden table, morning light")
    expect(page.get_by_test_id("estimate-cost")).to_have_text("1 Kwiki credit")
    page.get_by_label("Quality").select_option("hires")
    expect(page.get_by_test_id("estimate-cost")).to_have_text("2 Kwiki credits")

    # A job: the card is added by htmx and polls itself to done.
    page.get_by_role("button", name="Generate").click()
    card = page.locator("#jobs article.job")
    expect(card).to_have_count(1)
    expect(card).to_have_attribute("data-status", "succeeded", timeout=20_000)
    expect(card.locator(".thumbs img")).to_have_count(1)

    # Its detail page, the gallery, credits.
    card.get_by_role("link", name="Details").click()
    expect(page).to_have_url(re.compile(r"/g/[0-9a-f-]{36}/$"))
    expect(page.locator(".full-images img").first).to_have_js_property("complete", True)
    page.get_by_role("navigation").get_by_role("link", name="Gallery").click()
    expect(page.locator("ul.gallery li")).to_have_count(1)
    page.get_by_role("navigation").get_by_role("link", name="Credits").click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()

    # The team page: test a key, start a second team, switch back with the switcher (team.js).
    page.get_by_role("navigation").get_by_role("link", name="Team").click()
    page.locator("#provider-kie").get_by_role("button", name="Test this key").click()
    expect(page.locator(".msg")).to_contain_text("KIE.ai: the sandbox key works")
    page.get_by_label("New team name").fill("Second team")
    page.get_by_role("button", name="Create team").click()
    expect(page.locator(".msg")).to_contain_text("Team Second team created")
    expect(page.get_by_role("heading", level=1)).to_have_text("Second team")
    page.get_by_label("Team", exact=True).select_option(label="Alpha")
    expect(page.locator(".msg")).to_contain_text("You are now working in Alpha")

    # The admin.
    page.goto("/admin/")
    page.get_by_role("link", name="Users").first.click()
    page.get_by_role("link", name="alice").click()
    expect(page.get_by_label("Username:")).to_have_value("alice")
    page.goto("/admin/axes/accessattempt/")
    # (level 1: Django 6's change list also has hidden h2 headings naming the model.)
    expect(page.get_by_role("heading", level=1, name=re.compile("access attempt", re.I))).to_be_visible()

    # A page that does not exist.
    response = page.goto("/no-such-page/")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    page.get_by_role("link", name="Playground").first.click()
    expect(page.get_by_test_id("estimate")).to_be_visible()

    problems = without_expected_404(page.problems, "/no-such-page/")
    assert not problems, problems
    assert documents, "no page was seen"
    for url, header in documents.items():
        assert header and "script-src 'self'" in header and "style-src 'self'" in header, url
    assert Generation.objects.get().status == "succeeded"


def test_an_invited_person_signs_up_in_the_browser(page, team, user):
    log_in(page)
    page.goto("/team/")
    page.get_by_label("For (optional)").fill("Dana")
    page.get_by_role("button", name="Create invite link").click()
    expect(page.locator(".msg")).to_contain_text("Invite link created")
    link = page.get_by_label("Invite link").input_value()
    assert re.fullmatch(r"http://[^/]+/invite/[0-9a-f-]{36}/", link)
    shot(page, "team-invites")
    page.locator(".user-menu summary").click()
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile("/login/"))

    page.goto(link)
    expect(page.get_by_role("heading", name="Join Alpha")).to_be_visible()
    page.get_by_label("Username").fill("dana")
    page.get_by_label("Password", exact=True).fill("short")
    page.get_by_label("Password again").fill("short")
    page.get_by_role("button", name="Create account and join").click()
    expect(page.locator("#err-password2")).to_contain_text("too short")
    page.get_by_label("Password", exact=True).fill("a-long-passphrase-9")
    page.get_by_label("Password again").fill("a-long-passphrase-9")
    page.get_by_role("button", name="Create account and join").click()
    expect(page.locator(".msg")).to_contain_text("Welcome to Alpha")
    expect(page.locator(".team-name, #team-switch").first).to_be_visible()
    assert Invite.objects.get().used_by.username == "dana"

    # The link is spent.
    page.goto(link)
    expect(page.get_by_role("heading", name="This invite link does not work")).to_be_visible()
    problems = [p for p in page.problems if not p.startswith("HTTP 400") and not p.startswith("HTTP 410")]
    assert not problems, problems


@pytest.mark.parametrize("size", [(1366, 900), (390, 844)], ids=["laptop", "phone"])
def test_the_team_page_fits_the_screen(browser, app, team, user, size):
    from playground.accounts.models import Membership

    Membership.objects.create(team=Team.objects.create(name="Other"), user=user, role=Membership.OWNER)
    Invite.objects.create(team=team, note="Dana", expires_at=team.created_at.replace(year=team.created_at.year + 1))
    context = browser.new_context(base_url=app.url, viewport={"width": size[0], "height": size[1]})
    p = context.new_page()
    try:
        log_in(p)
        p.goto("/team/")
        expect(p.get_by_role("heading", name="Invite someone")).to_be_visible()
        width = p.evaluate("document.documentElement.scrollWidth")
        assert width <= size[0], f"the team page is {width}px wide on a {size[0]}px screen"
        shot(p, f"team-{size[0]}")
        p.goto("/no-such-page/")
        assert p.evaluate("document.documentElement.scrollWidth") <= size[0]
        shot(p, f"404-{size[0]}")
    finally:
        context.close()
