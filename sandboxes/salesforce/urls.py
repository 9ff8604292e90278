"""URLconf of the salesforce sandbox server: the vendor's paths at the root."""

from django.urls import path, re_path

from sandboxes.kit.views import control_urls

from . import views

urlpatterns = [
    *control_urls("salesforce"),
    path("__sandbox__/salesforce/org", views.org_control, name="salesforce-sandbox-org"),
    path("__sandbox__/salesforce/<slug:action>", views.simulate_control, name="salesforce-sandbox-simulate"),
    re_path(r"^services/oauth2/token/?$", views.token, name="salesforce-token"),
    re_path(r"^services/data/?$", views.versions, name="salesforce-versions"),
    re_path(r"^services/data/v(?P<version>\d+\.\d)/?(?P<path>.*)$", views.rest, name="salesforce-rest"),
]
