from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from playground.accounts import views as team_views
from playground.api import urls as api_urls
from playground.api import views as api_views
from playground.generations import (gallery_views, gallery_zip, polling, views_callback, views_detail, views_healthz,
                                    views_media, views_playground)
from playground.ledger import account
from playground.ledger import manage as ledger_manage
from playground.ledger import views as ledger_views

urlpatterns = [
    path("", views_playground.playground, name="playground"),
    path("estimate/<str:provider>/<str:model>", views_playground.estimate, name="estimate"),
    path("jobs/poll", polling.poll, name="poll_jobs"),
    path("g/<uuid:uuid>/", views_detail.generation, name="generation"),
    path("g/<uuid:uuid>/cancel", views_detail.cancel, name="cancel"),
    path("g/<uuid:uuid>/inputs/<uuid:input_uuid>", views_media.generation_input, name="generation_input"),
    path("generations/", gallery_views.gallery, name="gallery"),
    path("generations/zip", gallery_zip.download_zip, name="download_zip"),
    path("g/<uuid:uuid>/favorite", gallery_views.toggle_favorite, name="toggle_favorite"),
    path("g/<uuid:uuid>/visibility", gallery_views.set_visibility, name="set_visibility"),
    path("g/<uuid:uuid>/delete", gallery_views.delete_generation, name="delete_generation"),
    path("images/<uuid:uuid>", views_media.image, name="image"),
    path("images/<uuid:uuid>/thumb", views_media.image_thumb, name="image_thumb"),
    path("images/<uuid:uuid>/use-as-input", views_media.use_as_input, name="use_as_input"),
    path("inputs/<uuid:uuid>", views_media.input_image, name="input_image"),
    path("inputs/public/<str:token>", views_media.input_image_public, name="input_image_public"),
    path("library/", include("playground.library.urls")),
    path("compare/", include("playground.compare.urls")),
    path("credits/", ledger_views.credits, name="credits"),
    path("credits/budgets/", ledger_manage.budgets, name="budgets"),
    path("credits/budgets/<uuid:uuid>/delete", ledger_manage.delete_budget, name="delete_budget"),
    path("credits/prices/", ledger_manage.prices, name="prices"),
    path("credits/adjustments/", ledger_manage.adjustments, name="adjustments"),
    path("credits/export.csv", ledger_views.export_csv, name="credits_export"),
    path("account/", account.account, name="account"),
    path("account/tokens/<uuid:uuid>/revoke", account.revoke_token, name="revoke_token"),
    path("account/tokens/<uuid:uuid>/budget", account.token_budget, name="token_budget"),
    path("team/", team_views.team, name="team"),
    path("team/settings", team_views.team_settings, name="team_settings"),
    path("team/switch", team_views.switch_team, name="switch_team"),
    path("team/sharing", team_views.share_default, name="share_default"),
    path("team/members", team_views.add_member, name="add_member"),
    path("team/members/<str:username>/remove", team_views.remove_member, name="remove_member"),
    path("team/providers/<str:provider>", team_views.save_credential, name="save_credential"),
    path("team/providers/<str:provider>/test", team_views.test_key, name="test_key"),
    path("team/members/<str:username>/unlock", team_views.unlock_member, name="unlock_member"),
    path("team/invites", team_views.create_invite, name="create_invite"),
    path("team/invites/<uuid:uuid>/revoke", team_views.revoke_invite, name="revoke_invite"),
    path("teams/new", team_views.create_team, name="create_team"),
    path("invite/<uuid:uuid>/", team_views.invite, name="invite"),
    path("callbacks/<str:provider>/<str:token>", views_callback.provider_callback, name="provider_callback"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", views_healthz.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    # The OpenAI-compatible API; anything else under /v1/ is an OpenAI-style 404.
    path("v1/", include(api_urls)),
    path("v1/<path:rest>", api_views.unknown),
    *api_urls.page_urlpatterns,
]
