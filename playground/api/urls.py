from django.urls import path

from playground.lib.text import checks_own_text

from . import pages, views

urlpatterns = [
    path("images/generations", views.generations, name="api_generations"),
    path("images/edits", views.edits, name="api_edits"),
    path("images/variations", views.variations, name="api_variations"),
    path("images/jobs/<uuid:uuid>", views.job, name="api_job"),
    path("images/files/<str:token>", views.signed_image, name="api_image"),
    path("models", views.models, name="api_models"),
    path("models/<path:model>", views.model, name="api_model"),
]
for pattern in urlpatterns:  # the API answers bad text in its own JSON errors
    checks_own_text(pattern.callback)

# The team owner's alias page (a normal signed-in page, not under /v1/).
page_urlpatterns = [
    path("team/api/aliases/", pages.aliases, name="api_aliases"),
    path("team/api/aliases/<uuid:uuid>/delete", pages.delete_alias, name="api_delete_alias"),
]
