"""Business-level reconciliation between CRM, billing and ERP (issue 12).

readers.py   each system through its connector, page by page, into the run's snapshot
rules.py     the ordered, named, versioned rule set (match keys, tolerances, cardinality)
engine.py    the comparison: snapshot + rules → typed breaks (streamed)
runs.py      a run end to end: snapshot, compare, write breaks, open and resolve exceptions
dry_run.py   a changed rule set against the latest snapshot, changing nothing
api.py       the REST endpoints (runs, rules, dry run)
"""
