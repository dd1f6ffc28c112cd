"""Images in S3-compatible object storage (django-storages), as several
machines share them: a local S3 server (moto's server mode) is started by the
test itself. Results, thumbnails and inputs go to the bucket, nothing to the
local disk; every image URL is still team-checked, then streamed, or a
redirect to a short-lived signed URL."""

import io
from pathlib import Path
import zipfile
from urllib.parse import parse_qs, urlsplit

import httpx
from django.urls import reverse

from playground.generations.models import InputImage

from tests import factories
from tests.generations.conftest import BUCKET, keys
from tests.helpers import run_tasks


def local_files(settings):
    root = Path(settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_results_and_thumbnails_go_to_the_bucket_and_are_streamed_after_the_team_check(
        s3, sandbox, settings, client, user, team, other_user, other_team, django_capture_on_commit_callbacks):
    gen = factories.job(team, user, "kie", "seedream-v4", prompt="a weathervane on a barn roof")
    run_tasks(until=gen)
    assert gen.status == "succeeded", gen.error_message
    img = gen.images.get()
    assert img.file.name in keys(s3) and img.thumbnail.name in keys(s3)
    assert local_files(settings) == []  # nothing written to the local disk
    stored = s3.get_object(Bucket=BUCKET, Key=img.file.name)["Body"].read()

    client.force_login(user)
    response = client.get(reverse("image", args=[img.uuid]))
    assert response.status_code == 200 and response["Content-Type"] == img.content_type
    assert b"".join(response.streaming_content) == stored
    assert client.get(reverse("image_thumb", args=[img.uuid])).status_code == 200
    # "Use as input" reads the object and stores the input in the bucket too.
    assert client.post(reverse("use_as_input", args=[img.uuid])).status_code == 302
    inp = InputImage.objects.get()
    assert inp.file.name in keys(s3)
    assert client.get(reverse("input_image", args=[inp.uuid])).status_code == 200

    # A zip of the selection is streamed from the bucket.
    response = client.post(reverse("download_zip"), {"g": [str(gen.uuid)]})
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as zf:
        assert [zf.read(n) for n in zf.namelist()] == [stored]

    client.force_login(other_user)  # another team: 404, the object is never reached
    assert client.get(reverse("image", args=[img.uuid])).status_code == 404

    # Deleting the generation deletes its objects.
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(reverse("delete_generation", args=[gen.uuid])).status_code == 302
    assert img.file.name not in keys(s3) and img.thumbnail.name not in keys(s3)


def test_signed_redirects_send_the_browser_to_an_expiring_url_of_that_object(
        s3, sandbox, settings, client, user, team, other_user, other_team):
    settings.MEDIA_SIGNED_REDIRECTS = True
    settings.MEDIA_SIGNED_URL_SECONDS = 120
    gen = factories.job(team, user, "kie", "seedream-v4", prompt="a weathervane on a barn roof")
    run_tasks(until=gen)
    img = gen.images.get()
    client.force_login(user)
    response = client.get(reverse("image", args=[img.uuid]) + "?download=1")
    assert response.status_code == 302 and response["Cache-Control"] == "private, no-store"
    url = response["Location"]
    query = parse_qs(urlsplit(url).query)
    assert img.file.name in urlsplit(url).path
    assert query["X-Amz-Expires"] == ["120"] and "X-Amz-Signature" in query
    fetched = httpx.get(url)
    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == img.content_type
    assert fetched.headers["content-disposition"].startswith("attachment")
    assert fetched.content == s3.get_object(Bucket=BUCKET, Key=img.file.name)["Body"].read()

    client.force_login(other_user)
    assert client.get(reverse("image", args=[img.uuid])).status_code == 404
