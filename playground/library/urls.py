from django.urls import path

from . import views

urlpatterns = [
    path("", views.library, name="library"),
    path("new", views.new, name="library_new"),
    path("<uuid:uuid>/", views.prompt_page, name="prompt"),
    path("<uuid:uuid>/edit", views.edit, name="prompt_edit"),
    path("<uuid:uuid>/fork", views.fork, name="prompt_fork"),
    path("<uuid:uuid>/settings", views.prompt_settings, name="prompt_settings"),
    path("<uuid:uuid>/label", views.set_label, name="prompt_label"),
    path("<uuid:uuid>/diff", views.diff, name="prompt_diff"),
    path("v/<uuid:uuid>/", views.version_page, name="prompt_version"),
    path("v/<uuid:uuid>/run", views.run_version, name="version_run"),
]
