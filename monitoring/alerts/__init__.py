"""Alerts: what raises them and how each is decided once (services.py), and how they reach a channel (transports.py)."""
