"""Backup and restore of PostgreSQL as docs/04-operations.md ("Backup and restore") says: `pg_dump
-Fc` of a database holding payments, refunds and a settlement batch, `pg_restore` into a new
database, then the same rows and the same money in every table, and every migration applied."""

import glob
import os
import re
import shutil
import subprocess
import sys
from decimal import Decimal

import psycopg
import pytest
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone
from psycopg import sql

from payments.models import Payment, PaymentStatus
from payments.services import payment_process, payment_validate
from pgi.merchants.principals import Principal
from pgi.merchants.services import api_key_create
from refunds.models import Refund, RefundStatus
from refunds.services import refund_create, refunds_process
from settlements.models import FeePlan, FeePlanCurrency, PayoutFile, SettlementBatch
from settlements.services import payout_files_generate, settlement_run
from tests.factories import MerchantFactory

from .manifests import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def pg_program(name: str) -> str:
    """The PostgreSQL client program `name` of the server's major version (pg_dump refuses a newer
    server), else the newest installed, else the one on PATH."""
    installed = {
        int(re.search(r"/postgresql/(\d+)/", path)[1]): path for path in glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    }
    major = connection.cursor().connection.info.server_version // 10000
    found = installed.get(major) or (installed[max(installed)] if installed else shutil.which(name))
    assert found, f"{name} is not installed: PostgreSQL's client programs are needed (docs/04-operations.md)"
    return found


def libpq_environment() -> dict[str, str]:
    db = connection.settings_dict
    values = {"PGHOST": db["HOST"], "PGPORT": db["PORT"], "PGUSER": db["USER"], "PGPASSWORD": db["PASSWORD"]}
    return {**os.environ, **{key: str(value) for key, value in values.items() if value}}


def connect(dbname: str, **kwargs) -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(
        dbname=dbname, host=db["HOST"] or None, port=db["PORT"] or None, user=db["USER"] or None,
        password=db["PASSWORD"] or None, **kwargs,
    )  # fmt: skip


def database_totals(dbname: str) -> dict[str, tuple]:
    """Per table of the public schema: its row count, the sum of each numeric (money) column, and a
    digest of all its rows; then every sequence's position and every trigger."""
    totals = {}
    with connect(dbname) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        ).fetchall()
        for (table,) in tables:
            numeric = [
                column
                for (column,) in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
                    "AND table_name = %s AND data_type = 'numeric' ORDER BY column_name",
                    [table],
                )
            ]
            sums = [sql.SQL("sum({})").format(sql.Identifier(column)) for column in numeric]
            query = sql.SQL("SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) {} FROM {} t").format(
                sql.SQL("").join(sql.SQL(", ") + s for s in sums), sql.Identifier(table)
            )
            totals[table] = tuple(conn.execute(query).fetchone())
        totals["sequences"] = tuple(
            conn.execute("SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1")
        )
        totals["triggers"] = tuple(
            conn.execute("SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2")
        )
    return totals


def populate() -> dict[str, object]:
    """Payments, refunds and a settlement batch with its payout files, all through the services."""
    shop = MerchantFactory(code="backup-shop", name="Backup Shop", settlement_iban="DE89370400440532013000", settlement_bic="COBADEFFXXX")
    plan = FeePlan.objects.create(merchant=shop, basis_points=140)
    FeePlanCurrency.objects.create(plan=plan, currency="USD", fixed=Decimal("0.25"))
    api_key, _ = api_key_create(name="backup", merchant=shop)
    principal = Principal(api_key=api_key)

    def pay(amount: str, currency: str = "USD", account: str = "account123", capture: bool = True) -> Payment:
        draft = payment_validate(
            principal=principal, amount=Decimal(amount), currency=currency, from_account=account, to_merchant=None,
            capture=capture,
        )  # fmt: skip
        return payment_process(draft=draft, principal=principal)

    first, second = pay("100.00"), pay("20.50")
    pay("15.25", currency="EUR")
    pay("3.00", capture=False)  # Authorized
    assert pay("9.99", account="account0002").status == PaymentStatus.FAILED  # declined
    refund_create(payment_id=first.id, amount=Decimal("30.00"), principal=principal)
    refund_create(payment_id=second.id, amount=Decimal("0.50"), principal=principal)
    assert refunds_process()["completed"] == 2
    refund_create(payment_id=second.id, amount=Decimal("1.00"), principal=principal)  # still Pending

    outcomes = settlement_run(cutoff=timezone.now())
    batch = SettlementBatch.objects.get(merchant=shop, currency="USD")
    if not PayoutFile.objects.filter(batch=batch).exists():
        payout_files_generate(batch=batch)
    return {"batches": [o.batch_id for o in outcomes if o.batch_id], "usd_batch": batch}


@pytest.fixture
def restored_name():
    """The name of the database the dump is restored into, dropped before (a run that was killed
    leaves it) and after."""
    name = f"{connection.settings_dict['NAME']}_restored"
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with connect("postgres", autocommit=True) as admin:
        admin.execute(drop)
    yield name
    with connect("postgres", autocommit=True) as admin:
        admin.execute(drop)


def test_a_dump_restored_into_a_new_database_has_the_same_rows_money_and_migrations(tmp_path, restored_name):
    assert connection.vendor == "postgresql", "a PostgreSQL backup: run the tests with DATABASE_URL"
    made = populate()
    original = connection.settings_dict["NAME"]
    assert Payment.objects.count() == 5 and Refund.objects.filter(status=RefundStatus.COMPLETED).count() == 2
    usd = made["usd_batch"]
    # 100.00 + 20.50 captured, 30.50 refunded, fees 1.40 + 0.25 and 0.29 + 0.25.
    assert (usd.gross_amount, usd.refund_amount, usd.fee_amount) == (Decimal("120.50"), Decimal("30.50"), Decimal("2.19"))
    env = libpq_environment()
    dump = tmp_path / "pgi.dump"

    subprocess.run([pg_program("pg_dump"), "--format=custom", f"--file={dump}", original], env=env, check=True)
    with connect("postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(restored_name)))
    subprocess.run(
        [pg_program("pg_restore"), "--exit-on-error", "--single-transaction", "--no-owner", f"--dbname={restored_name}", str(dump)],
        env=env, check=True,
    )  # fmt: skip

    before, after = database_totals(original), database_totals(restored_name)
    assert after == before
    payments = after[Payment._meta.db_table]
    assert payments[0] == 5 and Decimal("148.74") in payments[2:]  # the five amounts: 100 + 20.50 + 15.25 + 3 + 9.99
    assert after[SettlementBatch._meta.db_table][0] == len(made["batches"]) >= 2  # USD and EUR
    assert after[Refund._meta.db_table][0] == 3

    # Every migration of this code is recorded as applied in the restored database, and Django
    # (as an operator would run it against the restored database) finds none left to apply.
    applied = {(m.app, m.name) for m in MigrationRecorder.Migration.objects.all()}
    with connect(restored_name) as restored:
        assert set(restored.execute("SELECT app, name FROM django_migrations")) == applied
    db = connection.settings_dict
    url = f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{restored_name}"
    check = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--check"], check=False, cwd=ROOT, env={**os.environ, "DATABASE_URL": url},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
