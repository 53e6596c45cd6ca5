"""The daily payment figures behind the finance dashboard: one row per UTC day, gateway and currency,
counted and summed in SQL from payments (services.payment_days_roll_up), so that 30 days of a
million payments are read as a few hundred rows. Today is always counted live."""

from django.db import models

from payments.models import money_field

FINANCE_GROUP = "Finance"


class PaymentDayRollup(models.Model):
    """A day whose figures are rolled up, and when: a day without payments has this row and no
    PaymentDayTotal, so that it is not counted again."""

    day = models.DateField(primary_key=True)
    refreshed_at = models.DateTimeField()

    class Meta:
        app_label = "settlements"
        ordering = ["-day"]
        permissions = [("use_finance_ui", "Can use the finance web UI")]

    def __str__(self) -> str:
        return self.day.isoformat()


class PaymentDayTotal(models.Model):
    """Payments created on one UTC day at one gateway in one currency, as payment_day_figures counts
    them for today (accepted, failed, without an answer yet, the amount charged)."""

    day = models.DateField()
    gateway = models.CharField(max_length=32)
    currency = models.CharField(max_length=3)
    payments = models.PositiveIntegerField()
    accepted = models.PositiveIntegerField()
    failed = models.PositiveIntegerField()
    open = models.PositiveIntegerField()
    charged = money_field()

    class Meta:
        app_label = "settlements"
        ordering = ["day", "gateway", "currency"]
        constraints = [
            # The unique index is also what the dashboard reads a range of days by.
            models.UniqueConstraint(fields=["day", "gateway", "currency"], name="payment_day_total_once"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.gateway} {self.currency}"
