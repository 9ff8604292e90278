"""KPIs: the definitions in DESIGN.md, computed set-based in PostgreSQL.

Each figure takes a `Window` [start, end) (window.py) and returns plain dicts; the API
(api.py), the screens and the tests all call these, so they cannot disagree. Percentiles use
`percentile_cont` in the database (linear interpolation); no function loads flow rows into
Python. "Now" is the window's `as_of` (one instant per request), passed to SQL as a parameter
rather than `now()`, so every figure on a page is computed against the same clock.

One module per KPI family (orders, amendments, invoices, exceptions, sla, money, quality,
flows for the per-flow-type distributions), over the shared SQL (sql.py) and the row sources
that combine hourly rollups with raw rows (sources.py, rollups.py); summary.py puts them
together for the API and the Overview.
"""
