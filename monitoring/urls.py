from django.urls import path

from .dashboards import reconciliation as recon_views
from .dashboards import views
from .exceptions import views as exception_views
from .live import views as live_views
from .sla import views as sla_views

app_name = "monitoring"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("orders/", views.orders, name="orders"),
    path("amendments/", views.amendments, name="amendments"),
    path("invoices/", views.invoices, name="invoices"),
    path("exceptions/", exception_views.exceptions, name="exceptions"),
    path("exceptions/export.csv", exception_views.exception_export, name="exception_export"),
    path("exceptions/groups/", exception_views.exception_groups, name="exception_groups"),
    path("exceptions/bulk-retry/", exception_views.exception_bulk_retry, name="exception_bulk_retry"),
    path("exceptions/bulk-jobs/<int:job_id>/", exception_views.exception_bulk_job, name="exception_bulk_job"),
    path("exceptions/views/", exception_views.saved_view_save, name="exception_saved_view_save"),
    path("exceptions/views/<int:view_id>/delete/", exception_views.saved_view_delete, name="exception_saved_view_delete"),
    path("exceptions/<int:pk>/", exception_views.exception_detail, name="exception_detail"),
    path("exceptions/<int:pk>/edit-payload/", exception_views.exception_edit_payload, name="exception_edit_payload"),
    path("exceptions/<int:pk>/payload-edits/<int:edit_id>/<slug:decision>/", exception_views.payload_edit_decide, name="exception_payload_edit_decide"),
    path("exceptions/<int:pk>/customer/<slug:decision>/", exception_views.exception_customer_decide, name="exception_customer_decide"),
    path("exceptions/<int:pk>/<slug:action>/", exception_views.exception_action, name="exception_action"),
    path("sla/", sla_views.sla, name="sla"),
    path("sla/policies/<int:pk>/", sla_views.sla_policy_edit, name="sla_policy_edit"),
    path("reconciliation/", recon_views.reconciliation, name="reconciliation"),
    path("reconciliation/run/", recon_views.run_now, name="reconciliation_run"),
    path("traces/", views.traces, name="traces"),
    path("traces/<int:pk>/", views.trace_detail, name="trace_detail"),
    path("deals/<path:deal_id>/", views.deal_detail, name="deal_detail"),  # deal ids may hold slashes
    path("connectors/", views.connectors, name="connectors"),
    path("live/banner/", live_views.outage_banner, name="live_banner"),
]
