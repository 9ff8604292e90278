"""The exception queue: its filter (filters.py), reads (selectors.py), actions (services.py), pages
(views.py, forms.py, export.py), API (api.py), bulk-retry job (tasks.py) and secret masking (redaction.py)."""
