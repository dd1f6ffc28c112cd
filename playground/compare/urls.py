from django.urls import path

from . import views

urlpatterns = [
    path("", views.comparisons, name="compare_list"),
    path("new", views.new, name="compare_new"),
    path("leaderboard", views.leaderboard_page, name="compare_leaderboard"),
    path("<uuid:uuid>/", views.grid, name="compare_grid"),
    path("<uuid:uuid>/cells", views.cells, name="compare_cells"),
    path("<uuid:uuid>/edit", views.edit, name="compare_edit"),
    path("<uuid:uuid>/rerun", views.rerun, name="compare_rerun"),
    path("cells/<uuid:uuid>/retry", views.retry_cell, name="compare_retry"),
    path("rows/<uuid:uuid>/vote", views.vote, name="compare_vote"),
]
