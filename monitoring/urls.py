from django.urls import path

from . import exception_views, views

app_name = "monitoring"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("orders/", views.orders, name="orders"),
    path("amendments/", views.amendments, name="amendments"),
    path("invoices/", views.invoices, name="invoices"),
    path("exceptions/", exception_views.exceptions, name="exceptions"),
    path("exceptions/<int:pk>/", exception_views.exception_detail, name="exception_detail"),
    path("exceptions/<int:pk>/<slug:action>/", exception_views.exception_action, name="exception_action"),
    path("sla/", views.sla, name="sla"),
    path("sla/policies/<int:pk>/", views.sla_policy_edit, name="sla_policy_edit"),
    path("reconciliation/", views.reconciliation, name="reconciliation"),
    path("traces/", views.traces, name="traces"),
    path("traces/<int:pk>/", views.trace_detail, name="trace_detail"),
    path("connectors/", views.connectors, name="connectors"),
]
