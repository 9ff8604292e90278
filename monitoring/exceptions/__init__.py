"""The exception queue: its filter (filters.py), reads (selectors.py), actions (services.py), pages
(views.py, forms.py, export.py), API (api.py), bulk-retry job (tasks.py) (secret masking: q2c_portal/redaction.py)."""
