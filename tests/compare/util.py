from django.urls import reverse

from playground.compare.models import Comparison

THREE = ["kie:seedream-v4", "kvid:text-to-image", "kawai:generations"]


def post_new(client, **data):
    form = {"prompt": "a calm lake at dawn", "models": THREE, "visibility": "team", "action": "run"}
    form.update(data)
    return client.post(reverse("compare_new"), form)


def newest() -> Comparison:
    return Comparison.objects.order_by("-id").first()
