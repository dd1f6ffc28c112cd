"""The grid polls with one request for all its cells (stopping when all are
final), blind voting hides the models from a viewer until they vote on the
row, the leaderboard's arithmetic, re-runs, and access (another team or a
teammate's private comparison is a 404)."""

from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from pytest_django.asserts import assertInHTML

from playground.compare import leaderboard
from playground.compare.models import Cell, Comparison, Vote

from tests import factories
from tests.compare.util import elements, newest, post_new, texts, values
from tests.helpers import login


def test_one_polling_request_for_the_whole_grid(client_in):
    text = (Path(settings.BASE_DIR) / "templates/compare/grid.html").read_text()
    assert text.count("hx-trigger") == 1 and text.count("hx-get") == 1
    post_new(client_in, models=["kie:seedream-v4", "kie:qwen", "kvid:text-to-image"], seeds="3, 4")
    comp = newest()
    cells_url = reverse("compare_cells", args=[comp.uuid])
    page = client_in.get(reverse("compare_grid", args=[comp.uuid])).content.decode()
    [polling] = elements(page, **{"hx-trigger": "every 2s"})
    assert dict(polling.attributes)["hx-get"] == cells_url and page.count("hx-trigger") == 1
    r = client_in.get(cells_url, HTTP_HX_REQUEST="true")
    assert r.status_code == 200
    body = r.content.decode()
    assert len(elements(body, "td", data_testid="cell")) == 6 and "hx-trigger" not in body and "<html" not in body
    for cell in Cell.objects.filter(row__comparison=comp).select_related("generation"):
        factories.finish(cell.generation)
    r = client_in.get(cells_url, HTTP_HX_REQUEST="true")
    assert r.status_code == 286  # htmx stops polling
    assert len(elements(r.content.decode(), "img")) == 6
    page = client_in.get(reverse("compare_grid", args=[comp.uuid])).content.decode()
    assert "hx-trigger" not in page


def _names(html):
    return texts(html, "cell-name")


def test_blind_voting_hides_names_until_the_viewer_votes(client_in, bob):
    post_new(client_in, models=["kie:seedream-v4", "kie:qwen"], blind="on", seeds="1, 2")
    comp = newest()
    assert comp.blind
    bob_client = login(bob)
    url = reverse("compare_grid", args=[comp.uuid])
    page = bob_client.get(url).content.decode()
    assert _names(page) == ["Model A", "Model B"] * 2
    assert "Seedream" not in page and "Qwen" not in page and "KIE credits" not in page  # the unit names the provider
    row1, row2 = comp.rows.all()
    # Each hidden row has its own order for this viewer, the same on every load.
    order = [v for v in values(page, "choice") if v not in ("tie", "all_bad")]
    assert sorted(order) == sorted(str(c.uuid) for r in (row1, row2) for c in r.cells.all())
    assert [v for v in values(bob_client.get(url).content.decode(), "choice") if v not in ("tie", "all_bad")] == order
    pick = row1.cells.get(column=1)
    r = bob_client.post(reverse("compare_vote", args=[row1.uuid]), {"choice": str(pick.uuid)})
    assert r.status_code == 302
    page = bob_client.get(url).content.decode()
    assert _names(page) == ["KIE.ai - Seedream V4", "KIE.ai - Qwen", "Model A", "Model B"]
    # Column headers and the per-model summary stay hidden until every row is voted on.
    assertInHTML('<th scope="col" data-testid="column">Cell 1</th>', page)
    assertInHTML('<td colspan="2" class="muted">Per-model summary shown once you have voted on every row.</td>', page)
    bob_client.post(reverse("compare_vote", args=[row2.uuid]), {"choice": "tie"})
    page = bob_client.get(url).content.decode()
    assert "Model A" not in page and "Cell 1" not in page and "median time" in page
    # Another viewer (alice) still sees them hidden.
    assert _names(client_in.get(url).content.decode()) == ["Model A", "Model B"] * 2
    # One vote per row and user: voting again changes it.
    bob_client.post(reverse("compare_vote", args=[row1.uuid]), {"choice": "all_bad"})
    assert Vote.objects.filter(user=bob).count() == 2
    assert Vote.objects.get(user=bob, row=row1).choice == "all_bad"


def test_elo_arithmetic_by_hand():
    b = leaderboard.Board()
    b.record(["a", "b", "c"], "a")
    # Equal ratings: each pair's expected score is 0.5, K 32: a +16 +16, b and c -16.
    assert [round(b.get(k).rating, 2) for k in "abc"] == [1032.0, 984.0, 984.0]
    b.record(["a", "b"], "tie")
    # E(a over b) = 1 / (1 + 10^((984 - 1032) / 400)) = 0.568656; a moves 32 * (0.5 - 0.568656) = -2.197
    assert round(b.get("a").rating, 2) == 1029.80 and round(b.get("b").rating, 2) == 986.20
    b.record(["a", "b", "c"], "all_bad")  # skipped by the rating
    assert round(b.get("a").rating, 2) == 1029.80
    b.record(["b", "c"], "c")
    # E(c over b) = 1 / (1 + 10^((986.197 - 984) / 400)) = 0.496838; c +32 * 0.503162 = +16.10
    assert round(b.get("c").rating, 2) == 1000.10 and round(b.get("b").rating, 2) == 970.10
    a, bb, c = (b.get(k) for k in "abc")
    assert (a.wins, a.losses, a.ties, a.all_bad, a.votes) == (1, 0, 1, 1, 2)
    assert (bb.wins, bb.losses, bb.ties, bb.all_bad, bb.votes) == (0, 2, 1, 1, 3)
    assert (c.wins, c.losses, c.ties, c.all_bad, c.votes) == (1, 1, 0, 1, 2)
    assert [s.key for s in b.ranked()] == ["a", "c", "b"]


def test_leaderboard_page_counts_the_teams_votes_filtered_by_member_and_date(client_in, user, bob):
    post_new(client_in, models=["kie:seedream-v4", "kie:qwen"], seeds="1, 2")
    comp = newest()
    row1, row2 = comp.rows.all()
    client_in.post(reverse("compare_vote", args=[row1.uuid]), {"choice": str(row1.cells.get(column=0).uuid)})
    login(bob).post(reverse("compare_vote", args=[row2.uuid]), {"choice": str(row2.cells.get(column=0).uuid)})
    url = reverse("compare_leaderboard")
    page = client_in.get(url).content.decode()
    # Two wins for Seedream: 1016, then 1016 + 32 * (1 - E) with E = 1/(1+10^(-32/400)) = 0.545922: 1030.5
    assertInHTML(standing(1, "kie:seedream-v4", "KIE.ai - Seedream V4", "1030.5", wins=2, votes=2), page)
    assertInHTML(standing(2, "kie:qwen", "KIE.ai - Qwen", "969.5", losses=2, votes=2), page)
    page = client_in.get(url, {"member": "bob"}).content.decode()
    assertInHTML(standing(1, "kie:seedream-v4", "KIE.ai - Seedream V4", "1016.0", wins=1, votes=1), page)
    Vote.objects.filter(user=bob).update(created=timezone.now() - timedelta(days=10))
    since = (timezone.now() - timedelta(days=2)).date().isoformat()
    page = client_in.get(url, {"from": since}).content.decode()
    assertInHTML(standing(1, "kie:seedream-v4", "KIE.ai - Seedream V4", "1016.0", wins=1, votes=1), page)


def standing(rank, key, label, elo, wins=0, losses=0, ties=0, all_bad=0, votes=0) -> str:
    """A leaderboard row as the page should have it."""
    return (f'<tr data-testid="standing" data-model="{key}"><td>{rank}</td><td>{label}</td>'
            f'<td data-testid="elo">{elo}</td><td>{wins}</td><td>{losses}</td><td>{ties}</td><td>{all_bad}</td>'
            f'<td>{votes}</td></tr>')


def test_rerun_makes_a_new_comparison_and_keeps_the_old(client_in):
    post_new(client_in, models=["kie:seedream-v4", "kvid:text-to-image"], seeds="5, 6", negative_prompt="blur",
             name="Dawn")
    old = newest()
    r = client_in.post(reverse("compare_rerun", args=[old.uuid]))
    new = newest()
    assert new != old and new.rerun_of == old and r["Location"] == reverse("compare_grid", args=[new.uuid])
    assert [row.seed for row in new.rows.all()] == [5, 6] and new.name == "Dawn"
    assert Cell.objects.filter(row__comparison=old).count() == Cell.objects.filter(row__comparison=new).count() == 4
    assert new.inputs["negative_prompt"] == "blur"


def test_other_team_and_private_comparisons_are_404(client_in, user, bob, other_user, other_team):
    post_new(client_in, models=["kie:seedream-v4"], visibility="private", name="Mine only")
    comp = newest()
    row = comp.rows.get()
    cell = row.cells.get()
    urls = [reverse("compare_grid", args=[comp.uuid]), reverse("compare_cells", args=[comp.uuid])]
    posts = [(reverse("compare_vote", args=[row.uuid]), {"choice": "tie"}),
             (reverse("compare_retry", args=[cell.uuid]), {}),
             (reverse("compare_rerun", args=[comp.uuid]), {}),
             (reverse("compare_edit", args=[comp.uuid]), {"name": "x", "visibility": "team"})]
    for someone in (login(other_user), login(bob)):
        for u in urls:
            assert someone.get(u).status_code == 404, u
        for u, data in posts:
            assert someone.post(u, data).status_code == 404, u
        assert "Mine only" not in someone.get(reverse("compare_list")).content.decode()
    assert client_in.get(urls[0]).status_code == 200
    # Shared with the team: bob sees it and votes, but cannot rename it or retry its cells.
    client_in.post(reverse("compare_edit", args=[comp.uuid]), {"name": "For the team", "visibility": "team"})
    comp.refresh_from_db()
    assert comp.name == "For the team" and comp.visibility == "team"
    assert cell.generation.__class__.objects.get(pk=cell.generation_id).visibility == "team"
    b = login(bob)
    assert b.get(urls[0]).status_code == 200 and "For the team" in b.get(reverse("compare_list")).content.decode()
    assert b.post(reverse("compare_vote", args=[row.uuid]), {"choice": "tie"}).status_code == 302
    assert b.post(reverse("compare_edit", args=[comp.uuid]), {"name": "y", "visibility": "team"}).status_code == 404
    assert b.post(reverse("compare_retry", args=[cell.uuid])).status_code == 404
    assert login(other_user).get(urls[0]).status_code == 404
    r = client_in.post(reverse("compare_edit", args=[comp.uuid]), {"name": "n" * 121, "visibility": "team"})
    assert "At most 120 characters" in client_in.get(r["Location"]).content.decode()
    assert Comparison.objects.get(pk=comp.pk).name == "For the team"
