"""URLconf of the stripe sandbox server: the vendor's paths at the root."""

from django.urls import path

from sandboxes.kit.views import control_urls

from . import views

urlpatterns = [
    path("v1/customers", views.customers),
    path("v1/customers/search", views.customer_search),
    path("v1/customers/<str:customer_id>", views.customer),
    path("v1/products", views.products),
    path("v1/products/<str:product_id>", views.product),
    path("v1/prices", views.prices),
    path("v1/prices/<str:price_id>", views.price),
    path("v1/subscriptions", views.subscriptions),
    path("v1/subscriptions/<str:subscription_id>", views.subscription),
    path("v1/invoices", views.invoices),
    path("v1/invoices/<str:invoice_id>", views.invoice),
    path("v1/credit_notes", views.credit_notes),
    path("v1/credit_notes/<str:credit_note_id>", views.credit_note),
    path("v1/events", views.events),
    path("v1/events/<str:event_id>", views.event),
    path("v1/billing/meter_events", views.meter_events),
    path("__sandbox__/counts", views.counts),
    *control_urls("stripe"),
]
