"""URLconf of the netsuite sandbox server: the vendor's paths at the root."""

from django.urls import path

from sandboxes.kit.views import control_urls

from . import views

urlpatterns = [
    *control_urls("netsuite"),
    path("services/rest/record/v1/<str:record_type>", views.record_collection, name="netsuite-record-collection"),
    path("services/rest/record/v1/<str:record_type>/<str:key>", views.record_instance, name="netsuite-record-instance"),
    path("services/rest/query/v1/suiteql", views.suiteql_view, name="netsuite-suiteql"),
]
