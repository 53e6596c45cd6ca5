"""Reconcile a gateway's day by hand, as beat's `reconcile-daily-<gateway>` job does, with a
progress bar (the lines loaded, then the steps of the match).

    manage.py reconcile --gateway simulator                       the day before today (lag_days)
    manage.py reconcile --gateway simulator --date 2026-11-30     that day: its current report, else fetched
    manage.py reconcile --gateway stripe --date … --file r.csv    that file (the same file twice is loaded once)
    manage.py reconcile … --dry-run                               the totals it would have; writes nothing
    manage.py reconcile --schedule                                a daily beat job for each gateway lacking one

Running a day again updates its run; resolutions stay (docs/08-batch-processing.md).
"""

import datetime as dt
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from tqdm import tqdm

from pgi.audit.actors import Actor
from pgi.audit.services import audit_record
from pgi.errors import ApplicationError
from pgi.money import UnknownCurrency, format_money
from settlements.reconciliation.models import Category, ReportSource, RunTrigger
from settlements.reconciliation.services import (
    reconciliation_day_default,
    reconciliation_file_run,
    reconciliation_run,
    reconciliation_schedules_ensure,
)

STEPS = 4

def _money(amount, currency: str) -> str:
    try:
        return format_money(amount, currency)
    except UnknownCurrency:  # a report's currency PGI does not know
        return f"{amount} {currency}".strip()
  # report lines matched, PGI's day matched, totals, exceptions


class Command(BaseCommand):
    help = "Reconcile a gateway's settlement report of one day with PGI's payments and refunds."

    def add_arguments(self, parser):
        parser.add_argument("--gateway", help="A configured gateway code.")
        parser.add_argument("--date", help="The UTC day, YYYY-MM-DD; default: lag_days before today.")
        parser.add_argument("--file", help="A report file to load (else the day's loaded report, else fetched).")
        parser.add_argument("--dry-run", action="store_true", help="Show the totals; write nothing.")
        parser.add_argument(
            "--schedule", action="store_true", help="Create the daily beat job of each configured gateway lacking one."
        )

    def handle(self, *args, gateway, date, file, dry_run, schedule, **options):
        if schedule:
            created = reconciliation_schedules_ensure()
            self.stdout.write(f"daily jobs created: {', '.join(created) or 'none (all exist)'}")
            if not gateway:
                return
        if not gateway:
            raise CommandError("--gateway is required.")
        try:
            day = dt.date.fromisoformat(date) if date else reconciliation_day_default()
        except ValueError as exc:
            raise CommandError(f"--date {date!r} is not YYYY-MM-DD.") from exc
        path = Path(file) if file else None
        if path is not None and not path.is_file():
            raise CommandError(f"No file {file!r}.")
        quiet = options["verbosity"] == 0
        # tqdm writes \r updates: the raw stream, not Django's wrapper that ends every write with a newline.
        out = self.stderr._out
        started = time.monotonic()
        load_bar = None
        if path is not None:
            load_bar = tqdm(desc="load", unit="line", file=out, disable=quiet)
        match_bar = None

        def loaded(count: int) -> None:
            load_bar.update(count - load_bar.n)

        def stepped(name: str) -> None:
            nonlocal match_bar
            if match_bar is None:
                if load_bar is not None:
                    load_bar.close()
                match_bar = tqdm(desc="match", total=STEPS if not dry_run else STEPS - 1, unit="step", file=out,
                                 disable=quiet)  # fmt: skip
            match_bar.set_postfix_str(name)
            match_bar.update(1)

        try:
            if path is not None:
                outcome = reconciliation_file_run(
                    gateway=gateway, day=day, data=path, name=path.name, source=ReportSource.COMMAND,
                    trigger=RunTrigger.COMMAND, dry_run=dry_run, load_progress=loaded, progress=stepped,
                )  # fmt: skip
            else:
                outcome = reconciliation_run(
                    gateway=gateway, day=day, trigger=RunTrigger.COMMAND, dry_run=dry_run, progress=stepped
                )
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        finally:
            for bar in (load_bar, match_bar):
                if bar is not None:
                    bar.close()
        seconds = time.monotonic() - started
        totals = outcome.totals
        report = outcome.report
        if not dry_run:  # loading and matching commit in steps: the run is recorded once it has finished
            with transaction.atomic():
                audit_record(actor=Actor.of_command("reconcile"), action="reconciliation.run", obj=outcome.run, after={
                    "gateway": gateway, "day": day, "report": report.name if report is not None else None,
                    "exceptions": totals.exceptions})  # fmt: skip
        if path is not None and not outcome.report_created:
            self.stdout.write("this file was loaded before: not loaded again")
        self.stdout.write(
            f"{gateway} {day.isoformat()}{' (dry run)' if dry_run else ''}: {totals.lines} report line(s)"
            f"{f' from {report.name}' if report is not None else ' (no report)'}, {totals.operations} PGI operation(s)"
        )
        for (category, currency), (count, report_amount, pgi_amount, *_rest) in sorted(totals.by_category.items()):
            amount = report_amount if category != Category.MISSING_AT_GATEWAY else pgi_amount
            self.stdout.write(f"  {category:<20} {currency or '-':<4} {count:>9}  {_money(amount, currency)}")
        self.stdout.write(f"matched {totals.matched}, exceptions {totals.exceptions} in {seconds:.2f} s")
