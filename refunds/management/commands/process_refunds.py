"""Run the refunds batch now, as beat's `process-refunds` job does, with a progress bar.

    manage.py process_refunds                 one batch (PGI_REFUNDS batch_size), as a batch of the beat job
    manage.py process_refunds --limit 5000    up to 5000 due refunds, taken batch_size at a time
    manage.py process_refunds --dry-run       list what is due (id, payment, amount, attempts); change nothing
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from pgi.money import format_money
from refunds.services import refunds_due_list, refunds_process

OUTCOMES = ("completed", "failed", "waiting", "flagged")


class Command(BaseCommand):
    help = "Send the refunds that are due (new, bulk-file, retries) and apply the answers; --dry-run lists them."

    def add_arguments(self, parser):
        parser.add_argument(
            "--limit", type=int, help="At most this many refunds (default: one batch, PGI_REFUND_BATCH_SIZE)."
        )
        parser.add_argument("--dry-run", action="store_true", help="List the due refunds; send nothing, claim nothing.")

    def handle(self, *args, limit: int | None, dry_run: bool, **options):
        batch_size = settings.PGI_REFUNDS["batch_size"]
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1.")
        limit = limit or batch_size
        if dry_run:
            self._list(limit)
            return
        counts = dict.fromkeys(OUTCOMES, 0)
        total = refunds_due_list(limit=limit).count()  # an estimate for the bar: more may fall due meanwhile
        # tqdm writes \r updates: the raw stream, not Django's wrapper that ends every write with a newline.
        with tqdm(total=total, unit="refund", file=self.stderr._out, disable=options["verbosity"] == 0) as bar:

            def progress(refund_id: str, outcome: str) -> None:
                counts[outcome] += 1
                bar.set_postfix(counts, refresh=False)
                bar.update(1)

            # batch_size at a time, as the beat job takes them: each run's lease covers one batch of
            # sends, not the whole of a large --limit.
            remaining = limit
            while remaining > 0:
                taken = sum(refunds_process(limit=min(batch_size, remaining), progress=progress).values())
                remaining -= taken
                if taken == 0:
                    break  # nothing due any more: each refund sent moved on (final, or a later look)
        self.stdout.write(", ".join(f"{outcome} {counts[outcome]}" for outcome in OUTCOMES))

    def _list(self, limit: int) -> None:
        due = list(refunds_due_list(limit=limit))
        self.stdout.write(f"{len(due)} refund(s) due" + (f" (the first {limit})" if len(due) == limit else ""))
        for refund in due:
            self.stdout.write(
                f"{refund.id}  payment {refund.payment_id}  {format_money(refund.amount, refund.currency)}"
                f"  attempts {refund.operation.attempts}"
            )
