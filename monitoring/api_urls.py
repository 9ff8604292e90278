"""Monitoring's API routes, mounted under /api/v1/ (q2c_portal/urls.py includes this module by name)."""

from django.urls import path

from .exceptions import api
from .kpis import api as kpi_api

urlpatterns = [
    path("kpis/", kpi_api.kpi_view, name="api-kpis"),
    path("exceptions/", api.exception_list, name="api-exception-list"),
    path("exceptions/groups/", api.exception_groups, name="api-exception-groups"),
    path("exceptions/bulk-retry/", api.exception_bulk_retry, name="api-exception-bulk-retry"),
    path("exceptions/bulk-jobs/<int:job_id>/", api.exception_bulk_job, name="api-exception-bulk-job"),
    path("exceptions/<int:pk>/", api.exception_detail, name="api-exception-detail"),
    path("exceptions/<int:pk>/retry/", api.exception_retry, name="api-exception-retry"),
    path("exceptions/<int:pk>/resolve/", api.exception_resolve, name="api-exception-resolve"),
    path("exceptions/<int:pk>/ignore/", api.exception_ignore, name="api-exception-ignore"),
    path("exceptions/<int:pk>/assign/", api.exception_assign, name="api-exception-assign"),
    path("exceptions/<int:pk>/comment/", api.exception_comment, name="api-exception-comment"),
    path("exceptions/<int:pk>/replay/", api.exception_replay, name="api-exception-replay"),
    path("exceptions/<int:pk>/cancel/", api.exception_cancel, name="api-exception-cancel"),
    path("exceptions/<int:pk>/edit-payload/", api.exception_edit_payload, name="api-exception-edit-payload"),
    path("exceptions/<int:pk>/customer-match/unmerge/", api.exception_customer_unmerge, name="api-exception-customer-unmerge"),
    path("exceptions/<int:pk>/customer-match/<slug:decision>/", api.exception_customer_decide, name="api-exception-customer-decide"),
]
