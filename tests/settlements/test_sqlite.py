"""Settlement on SQLite, the embedded default of `make run`: the same batches, to the last minor
unit, as the Python reference, though SQLite's own arithmetic on amounts is floating point.

The suite's database is PostgreSQL, so each test runs a child process (sqlite_child.py) on a
SQLite file of its own, copied from one migrated once per module (and per xdist worker): it seeds
a scenario, settles through `manage.py settle` and beat's job, and reports what it wrote."""

import json
import os
import random
import shutil
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from pgi.money import currency_exponent
from settlements.fees import Fee, fee_of
from settlements.payout_files import SEPA_MAX_AMOUNT

ROOT = Path(__file__).resolve().parents[2]
IBAN = "DE89370400440532013000"
BIC = "COBADEFFXXX"  # outside SEPA (USD, JPY, KWD) a transfer names the payee's bank


def sqlite_env(var_dir: Path, database: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PGI_CACHE_PREFIX", "PGI_CELERY_QUEUE")}
    env.update(DATABASE_URL=f"sqlite:///{database}", PGI_VAR_DIR=str(var_dir), PGI_SANDBOX="true")
    return env


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    var_dir = tmp_path_factory.mktemp("sqlite-settle")
    database = var_dir / "template.sqlite3"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=sqlite_env(var_dir, database), check=True,
        timeout=240,
    )
    return database


def start_child(var_dir: Path, database: Path, scenario: dict) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.settlements.sqlite_child"], cwd=ROOT, env=sqlite_env(var_dir, database),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    child.stdin.write(json.dumps(scenario))
    child.stdin.close()
    return child


def child_result(child: subprocess.Popen) -> dict:
    out, err = child.stdout.read(), child.stderr.read()
    assert child.wait(timeout=240) == 0, err[-3000:]
    return json.loads(out)


@pytest.fixture
def sqlite_file(migrated, tmp_path) -> Path:
    database = tmp_path / "pgi.sqlite3"
    shutil.copy(migrated, database)
    return database


@pytest.fixture
def settle_on_sqlite(sqlite_file, tmp_path):
    def run(scenario: dict) -> dict:
        return child_result(start_child(tmp_path, sqlite_file, scenario))

    return run


# Fee plans: shop-a 10 % (half-cent ties on every amount ending in 5 cents or 5 fils), a fixed
# part and a minimum in USD; shop-b 2 % (JPY amounts of 25 mod 50 yen are half a yen away);
# shop-c no plan (no fee).
MERCHANTS = [
    {"code": "shop-a", "iban": IBAN, "bic": BIC, "bps": 1000, "fees": {"USD": ["0.25", "0.50"], "KWD": ["0.100", None]}},
    {"code": "shop-b", "iban": IBAN, "bic": BIC, "bps": 200, "fees": {"JPY": ["10", None]}},
    {"code": "shop-c", "iban": IBAN, "bic": BIC},
]


def fee_for(merchant: str, currency: str) -> Fee:
    """The reference's fee plan: a merchant without a plan pays none, a currency the plan does not
    name gets the percentage alone."""
    plan = next(m for m in MERCHANTS if m["code"] == merchant)
    if plan.get("bps") is None:
        return Fee.none()
    fixed, minimum = plan["fees"].get(currency, ["0", None])
    return Fee(plan["bps"], Decimal(fixed), None if minimum is None else Decimal(minimum))


def random_payments(rng: random.Random, count: int) -> list[dict]:
    """Payments of every size: cents to hundreds of billions, ties on half a unit, partial
    captures, refunds."""
    payments = []
    for _ in range(count):
        merchant = rng.choice(["shop-a", "shop-b", "shop-c"])
        currency = rng.choice(["USD", "EUR", "JPY", "KWD"])
        digits = currency_exponent(currency)
        units = rng.choice([rng.randint(1, 999), rng.randint(1, 10**6), rng.randint(1, 10**13)])
        if rng.random() < 0.4:  # a tie at 10 % (shop-a) or, for yen, at 2 % (shop-b)
            units = units // 100 * 100 + (5 if digits else 25)
        amount = Decimal(units).scaleb(-digits)
        payment = {"merchant": merchant, "currency": currency, "amount": str(amount), "captured": rng.randint(1, 600)}
        if rng.random() < 0.2:
            payment["captured_amount"] = str((amount * Decimal(rng.randint(1, 99)) / 100).quantize(amount))
        captured = Decimal(payment.get("captured_amount") or payment["amount"])
        if rng.random() < 0.3 and captured > 0:
            payment["refunds"] = [[str((captured / 3).quantize(Decimal(1).scaleb(-digits))), 0.5]]
        payments.append(payment)
    return payments


def reference(payments: list[dict]) -> dict[tuple[str, str], list[Decimal]]:
    """{(merchant, currency): [gross, refunds, fees, carried, net]} as Python's Decimal makes them."""
    totals = defaultdict(lambda: [Decimal(0)] * 5)
    for p in payments:
        captured = Decimal(p.get("captured_amount") or p["amount"])
        fee = fee_of(captured, fee_for(p["merchant"], p["currency"]), p["currency"])
        refunds = sum((Decimal(amount) for amount, _ in p.get("refunds", [])), Decimal(0))
        gross, refunded, fees, carried, _ = totals[p["merchant"], p["currency"]]
        gross, refunded, fees = gross + captured, refunded + refunds, fees + fee
        totals[p["merchant"], p["currency"]] = [gross, refunded, fees, carried, gross - refunded - fees]
    return dict(totals)


def test_on_sqlite_the_batches_are_the_python_reference_to_the_minor_unit(settle_on_sqlite):
    payments = random_payments(random.Random(20261202), 160)
    payments += [  # the documented ties, each way
        {"merchant": "shop-a", "currency": "EUR", "amount": "10.25", "captured": 5},  # 1.025 -> 1.02
        {"merchant": "shop-a", "currency": "EUR", "amount": "10.35", "captured": 5},  # 1.035 -> 1.04
        {"merchant": "shop-b", "currency": "JPY", "amount": "1275", "captured": 5},  # 25.5 -> 26
        {"merchant": "shop-b", "currency": "JPY", "amount": "1225", "captured": 5},  # 24.5 -> 24
        {"merchant": "shop-a", "currency": "KWD", "amount": "10.005", "captured": 5},  # 1.0005 -> 1.000
        {"merchant": "shop-a", "currency": "KWD", "amount": "10.015", "captured": 5},  # 1.0015 -> 1.002
    ]
    expected = reference(payments)

    result = settle_on_sqlite(
        {"merchants": MERCHANTS, "payments": payments, "steps": [["dry-run", 0], ["settle", 0], ["job"], ["settle", 0]]}
    )

    dry_run, settled, job, again = result["steps"]
    assert f"batches created {len(expected)}, already settled or empty 0" in settled
    # A rerun adds nothing, and counts each pair as already settled.
    assert job == {"batches": 0, "pairs": len(expected)}
    assert f"batches created 0, already settled or empty {len(expected)}" in again
    batches = {(b["merchant"], b["currency"]): b for b in result["batches"]}
    assert set(batches) == set(expected)
    for pair, totals in expected.items():
        batch = batches[pair]
        assert [Decimal(v) for v in batch["totals"]] == totals, pair
        assert [Decimal(v) for v in dry_run[" ".join(pair)][:5]] == totals, pair
        # The payout files pay the net, in the currency's digits.
        net = totals[4].quantize(Decimal(1).scaleb(-currency_exponent(pair[1])))
        if pair[1] == "EUR" and net > SEPA_MAX_AMOUNT:  # more than one SEPA transfer carries: held
            assert (batch["status"], batch["files"]) == ("held", {}), pair
            continue
        assert batch["status"] == "pending" and f",{pair[1]},{net}," in batch["files"]["csv"], pair
        assert f'<InstdAmt Ccy="{pair[1]}">{net}</InstdAmt>' in batch["files"]["pain001"]
    # Each payment settled once, each line's fee the reference's, the event published once per batch.
    by_id = dict(zip(result["payments"], payments))
    lines = [line for line in result["lines"] if line["kind"] == "payment"]
    assert sorted(line["payment"] for line in lines) == sorted(result["payments"])
    for line in lines:
        p = by_id[line["payment"]]
        amount = Decimal(p.get("captured_amount") or p["amount"])
        fee = fee_of(amount, fee_for(p["merchant"], p["currency"]), p["currency"])
        assert (Decimal(line["amount"]), Decimal(line["fee"]), Decimal(line["net"])) == (amount, fee, amount - fee)
    assert sorted(result["events"]) == sorted(b["id"] for b in result["batches"])


def test_on_sqlite_a_batch_that_nets_below_zero_is_carried_into_the_next(settle_on_sqlite):
    day = 24 * 60
    payments = [
        {"merchant": "shop-a", "currency": "USD", "amount": "100.00", "captured": 2 * day + 60,
         "refunds": [["90.00", day + 30]]},
        {"merchant": "shop-a", "currency": "USD", "amount": "5.05", "captured": day + 60},
        {"merchant": "shop-a", "currency": "USD", "amount": "200.15", "captured": 60},
    ]

    result = settle_on_sqlite(
        {"merchants": MERCHANTS, "payments": payments, "steps": [["settle", 2], ["settle", 1], ["job"]], "pages": True}
    )

    first, carried, last = result["batches"]
    assert (first["days"], carried["days"], last["days"]) == (2, 1, 0)
    # 10 % of 100.00 + 0.25; 10 % of 5.05 is 0.505 -> 0.50 (half-even) + 0.25.
    assert first["totals"] == ["100.0000", "0.0000", "10.2500", "0.0000", "89.7500"]
    assert (carried["status"], carried["totals"]) == ("carried_forward", ["5.0500", "90.0000", "0.7500", "0.0000", "-85.7000"])
    assert carried["files"] == {}
    # 10 % of 200.15 is 20.015 -> 20.02 (half-even) + 0.25; then the carried -85.70.
    assert last["totals"] == ["200.1500", "0.0000", "20.2700", "-85.7000", "94.1800"]
    assert last["status"] == "pending" and ",USD,94.18," in last["files"]["csv"]
    [carry] = [line for line in result["lines"] if line["kind"] == "carry"]
    assert (carry["batch"], carry["carried"], carry["net"]) == (last["id"], carried["id"], "-85.7000")
    assert result["steps"][2] == {"batches": 1, "pairs": 1}

    # The merchant reads them through the API, staff in the admin.
    pages = result["pages"]
    assert all(status == 200 for status, _ in pages.values()), {name: status for name, (status, _) in pages.items()}
    listed = json.loads(pages["list"][1], parse_float=Decimal)["results"]
    assert sorted(s["netAmount"] for s in listed) == [Decimal("-85.70"), Decimal("89.75"), Decimal("94.18")]
    detail = json.loads(pages["detail"][1], parse_float=Decimal)
    assert (detail["id"], detail["carriedAmount"], detail["feeAmount"]) == (last["id"], Decimal("-85.70"), Decimal("20.27"))
    lines = json.loads(pages["lines"][1], parse_float=Decimal)["results"]
    assert [(x["kind"], x["net"]) for x in lines] == [("payment", Decimal("179.88")), ("carry", Decimal("-85.70"))]
    assert last["id"] in pages["admin list"][1] and "94.18" in pages["admin batch"][1]
    assert '"carry"' in pages["admin statement"][1] and pages["admin csv"][1] == last["files"]["csv"]


def test_on_sqlite_two_runs_at_once_take_turns_and_settle_once(settle_on_sqlite, sqlite_file, tmp_path):
    payments = [{"merchant": m, "currency": "EUR", "amount": "12.35", "captured": 30} for m in ("shop-a", "shop-b")]
    settle_on_sqlite({"merchants": MERCHANTS, "payments": payments, "steps": []})

    # The job twice at once (beat and a second worker): the second waits for the first's write
    # lock, then finds its batches made.
    children = [start_child(tmp_path, sqlite_file, {"merchants": [], "payments": [], "steps": [["job"]]}) for _ in "ab"]
    results = [child_result(child) for child in children]

    assert sorted(result["steps"][0]["batches"] for result in results) == [0, 2]
    assert len(results[1]["batches"]) == 2 and len(results[1]["lines"]) == 2 and len(results[1]["events"]) == 2
