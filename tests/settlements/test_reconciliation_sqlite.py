"""Reconciliation on SQLite, the embedded default of `make run`: the crafted day of
test_reconciliation.py lands in the same categories and totals as on PostgreSQL (lines written by
executemany instead of COPY). Run in a child process on a SQLite file of its own, as test_sqlite.py."""

import json
import subprocess
import sys

from .test_sqlite import ROOT, migrated, sqlite_env  # noqa: F401  (the module's migrated template)


def test_on_sqlite_a_crafted_report_produces_every_category(migrated, tmp_path):  # noqa: F811
    database = tmp_path / "pgi.sqlite3"
    database.write_bytes(migrated.read_bytes())
    child = subprocess.run(
        [sys.executable, "-m", "tests.settlements.reconciliation_sqlite_child"], cwd=ROOT,
        env=sqlite_env(tmp_path, database), capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr[-3000:]
    got = json.loads(child.stdout)
    p = got["payments"]

    assert got["categories"] == sorted([
        ["amount_mismatch", p["amount"]],
        ["currency_mismatch", p["currency"]],
        ["status_mismatch", p["failed"]],
        ["missing_at_gateway", p["missing"]],
        ["missing_at_gateway", got["missing_refund"]],
        ["unknown_to_pgi", "payment:sim_unknown"],
        ["unknown_to_pgi", "webhook:evt_ghost"],
        ["duplicate", f"{p['match']}#2"],
    ])  # fmt: skip
    assert got["run"] == [8, 3, 8, 7, 2] and got["reports"] == 1
    assert "this file was loaded before" in got["outputs"][1]
    # Exact decimals, though SQLite's own arithmetic on amounts is floating point (dialect.py).
    assert got["totals"] == [
        ["amount_mismatch", "USD", 1, "19.0000", "20.0000"],
        ["currency_mismatch", "EUR", 1, "30.0000", "0.0000"],
        ["currency_mismatch", "USD", 0, "0.0000", "30.0000"],
        ["duplicate", "USD", 1, "10.0000", "0.0000"],
        ["matched", "USD", 3, "64.0000", "64.0000"],
        ["missing_at_gateway", "USD", 2, "0.0000", "45.0000"],
        ["status_mismatch", "USD", 1, "60.0000", "0.0000"],
        ["unknown_to_pgi", "USD", 2, "70.0000", "0.0000"],
    ]
