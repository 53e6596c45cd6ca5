"""Settle now, as beat's `settle-daily` job does, with a progress bar (one step per merchant and currency).

    manage.py settle                                   up to the latest cut-off (the job's schedule)
    manage.py settle --cutoff 2026-12-01T00:00:00Z     up to that moment (naive: in the settlement time zone)
    manage.py settle --cutoff … --merchant shop-1      that merchant only
    manage.py settle --cutoff … --dry-run              the totals each batch would have; writes nothing
    manage.py settle --full                            every payment ever, not only PGI_SETTLEMENT lookback_days

Running a cut-off again adds nothing: its batches exist.
"""

import datetime as dt
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.dateparse import parse_datetime
from tqdm import tqdm

from pgi.audit.actors import Actor
from pgi.audit.services import audit_record
from pgi.errors import ApplicationError
from pgi.merchants.models import Merchant
from pgi.money import format_money
from settlements.services import (
    settlement_cutoff_check,
    settlement_cutoff_latest,
    settlement_run,
    settlement_schedule,
    settlement_since,
)


def _cutoff(text: str | None) -> dt.datetime:
    if text is None:
        return settlement_cutoff_latest()
    if not text.strip():
        raise CommandError("--cutoff is empty: give an ISO 8601 date and time, or leave --cutoff out for the latest cut-off.")
    try:
        moment = parse_datetime(text)
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(f"--cutoff {text!r} is not an ISO 8601 date and time.")
    if moment.tzinfo is None:
        zone = settlement_schedule()[1]
        moment = moment.replace(tzinfo=zone)
        if moment.utcoffset() != moment.replace(fold=1).utcoffset():  # a daylight saving change's hour
            raise CommandError(
                f"--cutoff {text!r} is skipped or repeated in {zone.key} by a daylight saving change: "
                "give it with its UTC offset."
            )
    try:
        moment = moment.astimezone(dt.UTC)
        settlement_since(moment)  # the lookback window must be a date too
    except OverflowError as exc:  # 0001-01-01T00:00:00Z and the like
        raise CommandError(f"--cutoff {text!r} is out of range.") from exc
    return moment


class Command(BaseCommand):
    help = "Settle captured payments and completed refunds up to a cut-off, one batch per merchant and currency."

    def add_arguments(self, parser):
        parser.add_argument("--cutoff", help="ISO 8601; default: the latest cut-off of the settle-daily schedule.")
        parser.add_argument("--merchant", help="A merchant code: settle this merchant only.")
        parser.add_argument("--dry-run", action="store_true", help="Show each batch's totals; write nothing.")
        parser.add_argument(
            "--full", action="store_true", help="Look at every payment and refund ever, not only the lookback window."
        )

    def handle(self, *args, cutoff: str | None, merchant: str | None, dry_run: bool, full: bool, **options):
        moment = _cutoff(cutoff)
        try:
            settlement_cutoff_check(moment)  # before anything is read or printed
        except ApplicationError as exc:
            raise CommandError(str(exc)) from exc
        chosen = None
        if merchant is not None:
            if not merchant.strip():
                raise CommandError("--merchant is empty: give a merchant code, or leave --merchant out for every merchant.")
            chosen = Merchant.objects.filter(code=merchant).first()
            if chosen is None:
                raise CommandError(f"No merchant {merchant!r}.")
        codes = dict(Merchant.objects.values_list("pk", "code"))
        created = existing = 0
        previews = []
        bar = None

        def planned(pairs) -> None:
            # Called by the run once it has found its merchants and currencies (one pass over the
            # payments, under the run's lock), before it writes. The bar counts them: the lines of
            # all of them are one INSERT (the bar waits through it), then each batch gets its
            # totals, files and event. tqdm writes \r updates: the raw stream, not Django's wrapper
            # that ends every write with a newline.
            nonlocal bar
            self.stdout.write(f"Cut-off {moment.isoformat()}: {len(pairs)} merchant/currency pair(s) to settle")
            bar = tqdm(total=len(pairs), unit="batch", file=self.stderr._out, disable=options["verbosity"] == 0)

        def progress(outcome) -> None:
            nonlocal created, existing
            created += outcome.created
            existing += not outcome.created
            previews.append(outcome.totals)
            bar.update(1)
            if dry_run and outcome.totals is not None:
                t = outcome.totals
                bar.write(
                    f"{codes[outcome.merchant_id]} {outcome.currency}: {t.payments} payment(s), "
                    f"{t.refunds_count} refund(s), net {format_money(t.net, outcome.currency)}",
                    file=self.stdout._out,
                )

        started = time.monotonic()
        try:
            settlement_run(
                cutoff=moment, merchant=chosen, dry_run=dry_run, planned=planned, progress=progress, full=full
            )
        except ApplicationError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if bar is not None:
                bar.close()
        seconds = time.monotonic() - started
        if dry_run:  # a closing line of its own: the bar's last state is not the end of the output
            would = sum(1 for t in previews if t is not None and t.lines)
            self.stdout.write(f"dry run: {would} batch(es) would be made; nothing written ({seconds:.2f} s)")
        else:
            # Each batch commits on its own as the run goes: the run is recorded once it has finished.
            with transaction.atomic():
                audit_record(actor=Actor.of_command("settle"), action="settlement.run", object_type="settlements.settlementbatch",
                             object_repr=f"settlement run to {moment.isoformat()}", after={
                                 "cutoff": moment, "merchant": chosen.code if chosen else None, "full": full,
                                 "batches_created": created})  # fmt: skip
            self.stdout.write(f"batches created {created}, already settled or empty {existing} in {seconds:.2f} s")
