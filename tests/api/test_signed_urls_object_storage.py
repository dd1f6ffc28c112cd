"""The API's signed image URLs with images in object storage (a local S3
server, the generations tests' fixtures): streamed from the bucket, or with
MEDIA_SIGNED_REDIRECTS a redirect to a short-lived object URL."""

import httpx
from django.test import RequestFactory

from playground.api.views import signed_url
from tests import factories
from tests.generations.conftest import BUCKET, s3, s3_server  # noqa: F401  (fixtures)
from tests.helpers import run_tasks


def test_signed_url_streams_or_redirects_to_the_object_without_login(s3, sandbox, settings, client, user, team):  # noqa: F811
    gen = factories.job(team, user, "kwiki", "generate", prompt="a weathervane on a barn roof")
    run_tasks(until=gen)
    img = gen.images.get()
    stored = s3.get_object(Bucket=BUCKET, Key=img.file.name)["Body"].read()
    url = signed_url(RequestFactory().get("/"), img)
    path = url.split("testserver", 1)[1]
    response = client.get(path)  # no login
    assert response.status_code == 200 and b"".join(response.streaming_content) == stored
    settings.MEDIA_SIGNED_REDIRECTS = True
    response = client.get(path)
    assert response.status_code == 302 and BUCKET in response["Location"]
    assert httpx.get(response["Location"]).content == stored
