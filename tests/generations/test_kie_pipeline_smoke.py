
from playground.generations.pipeline import create
from playground.generations.models import Generation

from tests.helpers import run_tasks


def test_it_generates_a_seedream_image_end_to_end(sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4",
                      params={"prompt": "a lighthouse at dusk", "image_size": "landscape_16_9", "seed": 3})
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED, gen.error_message
    img = gen.images.get()
    assert (img.width, img.height) == (1024, 576)
    assert gen.provider_job_id.startswith("task_")
