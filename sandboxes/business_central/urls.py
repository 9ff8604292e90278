"""URLconf of the business_central sandbox server: BC's and Entra's paths at the root."""

from django.urls import path, re_path

from sandboxes.kit.views import control_urls

from . import tokens, views

urlpatterns = [
    *control_urls("business_central"),
    path("__sandbox__/settings", views.settings_view, name="business_central-sandbox-settings"),
    path("__sandbox__/settings/reset", views.settings_reset, name="business_central-sandbox-settings-reset"),
    path("__sandbox__/tokens/revoke", views.revoke_tokens, name="business_central-sandbox-revoke"),
    path("__sandbox__/notifications/deliver", views.deliver_notifications, name="business_central-sandbox-deliver"),
    re_path(r"^(?P<tenant>[^/]+)/oauth2/v2\.0/token$", tokens.token_view, name="business_central-token"),
    re_path(r"^v2\.0/(?P<tenant>[^/]+)/(?P<environment>[^/]+)/api/v2\.0/(?P<tail>.*)$", views.api, name="business_central-api"),
]
