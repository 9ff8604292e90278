"""SLA: policies in time (policies.py), breach marking and policy edits (services.py), the SLA
page (views.py, forms.py, selectors.py)."""
