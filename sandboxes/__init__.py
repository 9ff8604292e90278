"""The vendor simulators: local Salesforce, NetSuite, Business Central and Stripe, the fault kit, and demo traffic.

Not part of the product. The product's settings (`q2c_portal.settings`) do not install these
apps and its database holds none of their tables; `sandboxes.settings` adds them, with a
database of their own. The demo (`bin/run-demo`), the tests and the benches run them.
Dependencies point one way: `sandboxes` may use `sync` (the connectors' wire helpers and
mappers), nothing in `sync`, `monitoring` or `q2c_portal` imports `sandboxes`.
"""
