"""The dashboards: pages (views.py, context.py), their lists (selectors.py), charts and tiles."""
