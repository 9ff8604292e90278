"""Detection of what never arrived (missing_events.py), not only of what failed."""
