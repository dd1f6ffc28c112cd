"""visible_to(user, team): the one rule for what a user sees (today: their
own rows in the team they work in). And the one way a stored image is
served: its type never sniffed, cached privately, named, a 404 once its file
is gone."""

from decimal import Decimal
import io
from pathlib import Path
import re

from django.contrib.auth.models import AnonymousUser
from django.urls import reverse
from PIL import Image
import pytest

import playground
from playground.generations.models import Generation, GenerationImage, InputImage
from playground.ledger import book
from playground.ledger.models import Entry

from tests import factories
from tests.helpers import run_tasks


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (48, 48), "olive").save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def finished(sandbox, team, user):
    gen = factories.job(team, user, "kie", "seedream-v4", prompt="a row of poplars")
    run_tasks(until=gen)
    return gen


def test_visible_to_is_the_viewers_own_rows_and_the_teams_shared_ones(finished, team, user, other_user, other_team):
    colleague = factories.user("carol")
    team.memberships.create(user=colleague, role="member")
    mine_elsewhere = factories.team("Gamma", owner=user)
    rows = {
        Generation: finished,
        GenerationImage: finished.images.get(),
        InputImage: InputImage.from_bytes(team=team, owner=user, data=png()),
        Entry: Entry.objects.get(generation=finished, kind=Entry.CAPTURE),
    }
    # Rows of others (another member of the team; another team) and mine in another team.
    others = [factories.job(team, colleague, "kie", "seedream-v4", prompt="a hedge"),
              factories.job(team, colleague, "kie", "seedream-v4", prompt="a shared hedge"),
              factories.job(other_team, other_user, "kie", "seedream-v4", prompt="a fence"),
              factories.job(mine_elsewhere, user, "kie", "seedream-v4", prompt="a gate")]
    Generation.objects.filter(pk=others[0].pk).update(visibility=Generation.PRIVATE)
    run_tasks(until=others[1])
    shared = {Generation: others[1], GenerationImage: others[1].images.get()}
    for gen in others:
        InputImage.from_bytes(team=gen.team, owner=gen.owner, data=png())
        if not Entry.objects.filter(generation=gen, kind=Entry.CAPTURE).exists():  # not run above
            book.capture(gen, Decimal("1"))
    for model, mine in rows.items():
        rows_of = Entry.objects.filter(kind=Entry.CAPTURE) if model is Entry else model.objects
        assert set(rows_of.visible_to(user, team)) == {mine, *([shared[model]] if model in shared else [])}, model
        assert list(rows_of.owned_by(user, team)) == [mine], model.__name__
        assert rows_of.visible_to(AnonymousUser(), team).count() == 0
        assert rows_of.visible_to(user, None).count() == 0
    assert list(Generation.objects.visible_to(user, mine_elsewhere)) == [others[3]]
    assert set(Generation.objects.visible_to(colleague, team)) == {others[0], others[1], finished}


def test_no_view_spells_out_the_visibility_filter():
    """Views ask visible_to; the filter by team and owner is written once."""
    root = Path(playground.__file__).parent
    spelled = re.compile(r"owner=request\.user|user=request\.user|generation__team=|generation__owner=")
    found = [f"{p.relative_to(root)}:{n}" for p in root.glob("*/views*.py")
             for n, line in enumerate(p.read_text().splitlines(), 1)
             if spelled.search(line) and ".create(" not in line and "from_bytes(" not in line
             and "Membership" not in line]
    assert found == []


def _urls(gen, inp):
    """name: (URL, content type, disposition, the stored file)."""
    from urllib.parse import urlsplit

    img = gen.images.get()
    return {
        "image": (reverse("image", args=[img.uuid]), img.content_type, "inline", img.file),
        "download": (reverse("image", args=[img.uuid]) + "?download=1", img.content_type, "attachment", img.file),
        "thumbnail": (reverse("image_thumb", args=[img.uuid]), "image/jpeg", "inline", img.thumbnail),  # opaque
        "input image": (reverse("input_image", args=[inp.uuid]), inp.content_type, "inline", inp.file),
        "public input image": (urlsplit(inp.signed_url()).path, inp.content_type, "inline", inp.file),
    }


def test_every_image_url_is_served_the_same_way(client_in, finished, team, user):
    inp = InputImage.from_bytes(team=team, owner=user, data=png())
    urls = _urls(finished, inp)
    for name, (url, content_type, disposition, _) in urls.items():
        response = client_in.get(url)
        assert response.status_code == 200, name
        assert response["Content-Type"] == content_type, name
        assert response["X-Content-Type-Options"] == "nosniff", name
        assert re.fullmatch(r"private, max-age=\d+", response["Cache-Control"]), name
        assert response["Content-Disposition"].startswith(f'{disposition}; filename="'), name
        assert b"".join(response.streaming_content), name
    assert "seedream-v4-" in client_in.get(urls["download"][0])["Content-Disposition"]
    assert client_in.get(urls["public input image"][0])["Cache-Control"] == "private, max-age=300"


def test_every_image_url_is_a_404_once_its_file_is_gone(client_in, finished, team, user):
    inp = InputImage.from_bytes(team=team, owner=user, data=png())
    urls = _urls(finished, inp)
    for name, (url, _, _, field) in urls.items():
        if field.storage.exists(field.name):
            field.storage.delete(field.name)
        assert client_in.get(url).status_code == 404, name


def test_a_results_files_go_in_a_folder_shared_by_a_256th_of_the_teams_jobs(sandbox, team, user, settings):
    """No folder per job (a new folder is a metadata write like a new file):
    generations/<team>/<first two hex digits of the job's uuid>/, the files
    named by the job's uuid, so two jobs never collide and the folders stop
    growing in number after 256."""
    gens = [factories.job(team, user, "kie", "seedream-v4", prompt=f"a row of poplars {i}") for i in range(2)]
    for gen in gens:
        run_tasks(until=gen)
    folders = set()
    for gen in gens:
        img = gen.images.get()
        folder = f"generations/{team.uuid}/{gen.uuid.hex[:2]}/"
        for name in (img.file.name, img.thumbnail.name):
            assert name.startswith(f"{folder}{gen.uuid.hex}-0-"), name
            assert (Path(settings.MEDIA_ROOT) / name).is_file()
        assert img.thumbnail.name.endswith(("-thumb.jpg", "-thumb.webp"))
        folders.add(folder)
    assert len(list((Path(settings.MEDIA_ROOT) / "generations" / str(team.uuid)).iterdir())) == len(folders)
