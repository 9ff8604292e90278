"""URLconf of the salesforce sandbox server: the vendor's paths at the root."""

from sync.connectors.sandbox_kit.views import control_urls

urlpatterns = [*control_urls("salesforce")]
