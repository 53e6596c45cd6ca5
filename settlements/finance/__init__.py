"""The finance web UI at /finance/: a dashboard, settlement batches and their payout files, and CSV
exports of every table, for members of the `Finance` group (docs/08-batch-processing.md#finance-ui).

Server-rendered pages; reads through settlements' and payments' selectors and this package's own
(selectors.py); the only writes are the daily payment figures' rollup (services.py).
"""
