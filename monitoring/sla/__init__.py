"""SLA: policies in time (policies.py), breach marking and policy edits (services.py), the SLA
page (views.py, forms.py, selectors.py)."""

# The engine's runner imports `monitoring.sla.sla_due_at` (behind try/except ImportError) until
# it takes the due-date function from a setting; the function lives in policies.py. Remove this
# line once the runner names monitoring.sla.policies.sla_due_at.
from .policies import sla_due_at  # noqa: F401
