"""Staff admin for settlement: fee plans (editable), batches and their lines (read-only), payout
files as downloads, and the few things staff do to a batch: mark it paid out, hold it (with a
reason, on a confirmation page), release a hold, build its payout files again. Every change goes
through settlements.services (the batch's row lock, the history line). Each action needs its own
permission (Finance's, pgi/staff/roles.py); the payee's IBAN and the payout files that hold it need
payments.view_full_account too."""


from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from pgi.admin_format import instant
from pgi.admin_masking import AccountMaskMixin, account_masked, may_see_full_accounts
from pgi.admin_readonly import ReadOnlyAdminMixin
from pgi.audit.admin_hooks import admin_actor
from pgi.errors import BusinessRuleViolation
from pgi.money import fits_currency, format_money, is_payable_currency, quantize

from .downloads import payout_file_response, statement_csv_response
from .models import (
    BatchStatus,
    FeePlan,
    FeePlanCurrency,
    SettlementBatch,
    SettlementLine,
    SettlementStatusChange,
)
from .checks import settle_daily_crontab_problem
from .selectors import payout_file_get, settlement_run_missing
from .services import SCHEDULE_NAME, payout_files_generate, settlement_batch_move


class FeePlanCurrencyForm(forms.ModelForm):
    class Meta:
        model = FeePlanCurrency
        fields = ["currency", "fixed", "minimum"]

    def clean(self):
        data = super().clean()
        currency = data.get("currency", "")
        if currency and not is_payable_currency(currency):
            self.add_error("currency", "Not an ISO 4217 currency code (upper case, e.g. USD).")
            return data
        for name in ("fixed", "minimum"):
            value = data.get(name)
            if value is None:
                continue
            # Messages of their own, before the database's check constraints would name themselves.
            if value < 0:
                self.add_error(name, "Must be 0 or more.")
            elif currency and not fits_currency(value, currency):
                self.add_error(name, f"More decimals than {currency} has.")
            elif currency:
                # 1e2 is 100.00, -0 is 0.00: stored and shown as the currency writes amounts.
                data[name] = quantize(value + 0, currency)
        return data


class FeePlanCurrencyFormSet(forms.BaseInlineFormSet):
    def clean(self):
        """Each currency of the plan is one its merchant takes payments in (a fee in another one
        would never apply)."""
        super().clean()
        merchant = getattr(self.instance, "merchant", None) if self.instance.merchant_id else None
        if merchant is None:
            return
        enabled = set(merchant.currencies.values_list("currency", flat=True))
        for form in self.forms:
            currency = getattr(form, "cleaned_data", {}).get("currency")
            if currency and not form.cleaned_data.get("DELETE") and currency not in enabled:
                form.add_error(
                    "currency",
                    f"{merchant.code} does not take payments in {currency} "
                    f"(its currencies: {', '.join(sorted(enabled)) or 'none'}).",
                )


class FeePlanCurrencyInline(admin.TabularInline):
    model = FeePlanCurrency
    form = FeePlanCurrencyForm
    formset = FeePlanCurrencyFormSet
    extra = 1


class FeePlanForm(forms.ModelForm):
    class Meta:
        model = FeePlan
        fields = "__all__"

    def clean_basis_points(self):
        value = self.cleaned_data["basis_points"]
        if value is not None and value > 10000:
            raise forms.ValidationError("At most 10000 basis points (100 %).")
        return value


@admin.register(FeePlan)
class FeePlanAdmin(admin.ModelAdmin):
    form = FeePlanForm
    list_display = ["merchant", "basis_points", "currencies"]
    list_select_related = ["merchant"]
    search_fields = ["merchant__code", "merchant__name"]
    autocomplete_fields = ["merchant"]
    inlines = [FeePlanCurrencyInline]

    @admin.display(description="fixed and minimum")
    def currencies(self, obj: FeePlan) -> str:
        return ", ".join(
            f"{c.currency} +{c.fixed}" + (f" (min {c.minimum})" if c.minimum is not None else "")
            for c in obj.currencies.all()
        ) or "-"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("currencies")


class StatusChangeInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = SettlementStatusChange
    fields = ["at", "from_status", "to_status", "reason", "changed_by"]
    extra = 0
    can_delete = False
    verbose_name = "payout status change"
    verbose_name_plural = "payout status history"

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("settlements.view_settlementbatch")

    @admin.display(description="at (UTC)")
    def at(self, obj: SettlementStatusChange) -> str:
        return instant(obj.created_at)


class HoldForm(forms.Form):
    reason = forms.CharField(
        max_length=200,
        strip=True,
        help_text="Why the payout is held. Recorded in the batch's history, for staff only: the merchant "
        "sees “Held by the bank.”",
    )


class PaidOutForm(forms.Form):
    reason = forms.CharField(
        label="Bank reference",
        max_length=200,
        strip=True,
        help_text="The bank's confirmation of the transfer (its reference). Recorded in the batch's "
        "history; a batch marked paid out cannot be changed again.",
    )


MOVES = {
    # action: (form, to status, title, question, button, done)
    "mark_paid_out": (
        PaidOutForm, BatchStatus.PAID_OUT, "Mark settlement batches paid out",
        "Mark these batches paid out? Do so only once the bank has confirmed the transfer.",
        "Mark these batches paid out", "Marked paid out:",
    ),
    "hold": (
        HoldForm, BatchStatus.HELD, "Hold settlement batches",
        "Hold the payout of these batches? A held batch is not paid out until it is released or marked paid out.",
        "Hold these batches", "Held:",
    ),
}


@admin.register(SettlementBatch)
class SettlementBatchAdmin(AccountMaskMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "merchant_code", "currency", "cutoff_display", "net_display", "status", "payout_date"]
    list_filter = ["status", "currency", "merchant", ("cutoff", admin.DateFieldListFilter)]
    list_select_related = ["merchant"]
    show_full_result_count = False
    search_fields = ["=id", "=merchant__code"]
    actions = ["mark_paid_out", "hold", "release", "regenerate_files"]
    # The payout files hold the payee's IBAN: without whole accounts, their names only.
    masked_fields = {"payee_iban_display": "payee_iban_masked", "files": "files_listed"}
    masked_lookups = ("payee_iban",)
    inlines = [StatusChangeInline]
    fieldsets = [
        ("Batch", {"fields": ["id", "merchant", "currency", "cutoff_display", "status", "status_reason", "payout_date"]}),
        (
            "Totals",
            {"fields": ["gross_display", "refund_display", "fee_display", "carried_display", "net_display", "counts", "lines_link"]},
        ),
        ("Fee plan applied", {"fields": ["fee_basis_points", "fee_fixed_display", "fee_minimum_display"]}),
        ("Payee", {"fields": ["payee_name", "payee_iban_display", "payee_bic_display", "files"]}),
    ]

    def changelist_view(self, request, extra_context=None):
        if (cutoff := settlement_run_missing()) is not None:
            self.message_user(
                request,
                f"No settlement run is recorded for the cut-off {instant(cutoff)} UTC. The settle-daily job "
                "did not run or did not finish (beat or the worker down; a worker stopped mid-run is retried "
                "only after the broker's visibility timeout). Check the worker, or run `manage.py settle`.",
                messages.WARNING,
            )
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        download = path(
            "<path:object_id>/file/<str:kind>/",
            self.admin_site.admin_view(self.file_view),
            name="settlements_settlementbatch_file",
        )
        statement = path(
            "<path:object_id>/statement.csv",
            self.admin_site.admin_view(self.statement_view),
            name="settlements_settlementbatch_statement",
        )
        return [download, statement, *super().get_urls()]

    def file_view(self, request, object_id: str, kind: str):
        """A payout file as stored, byte for byte, to staff who may see the batch and whole accounts
        (the file holds the payee's IBAN)."""
        if not (self.has_view_permission(request) and may_see_full_accounts(request.user)):
            raise PermissionDenied
        file = payout_file_get(batch_id=object_id, kind=kind)
        if file is None:
            raise Http404("No such payout file.")
        return payout_file_response(file)

    def statement_view(self, request, object_id: str):
        """The batch's lines as CSV (the merchant statement), streamed: a batch may have a million.
        Every line of the batch: for staff who may see the lines too."""
        if not (self.has_view_permission(request) and request.user.has_perm("settlements.view_settlementline")):
            raise PermissionDenied
        return statement_csv_response(get_object_or_404(SettlementBatch, pk=object_id))

    # --- Actions, each behind a permission of its own ---------------------------------------------

    def has_mark_paid_out_permission(self, request) -> bool:
        return request.user.has_perm("settlements.mark_paid_out_settlementbatch")

    def has_hold_permission(self, request) -> bool:
        return request.user.has_perm("settlements.hold_settlementbatch")

    def has_rebuild_payout_files_permission(self, request) -> bool:
        return request.user.has_perm("settlements.rebuild_payout_files_settlementbatch") and may_see_full_accounts(
            request.user
        )

    def _move(self, request, queryset, to_status: str, reason: str, done: str) -> None:
        user, moved = request.user.get_username(), 0
        for batch_id in queryset.order_by("created_at", "id").values_list("pk", flat=True):
            try:
                settlement_batch_move(
                    batch_id=batch_id, to_status=to_status, staff_user=user, reason=reason, actor=admin_actor(request)
                )
            except BusinessRuleViolation as exc:
                self.message_user(request, f"Batch {batch_id}: {exc.message} ({exc.code})", messages.ERROR)
                continue
            moved += 1
        if moved:
            self.message_user(request, f"{done} {moved} batch{pluralize(moved, 'es')}.", messages.SUCCESS)

    @admin.action(description="Mark the selected batches paid out…", permissions=["mark_paid_out"])
    def mark_paid_out(self, request, queryset):
        return self._confirmed_move(request, queryset, "mark_paid_out")

    @admin.action(description="Release the selected held batches", permissions=["hold"])
    def release(self, request, queryset):
        self._move(request, queryset, BatchStatus.PENDING, "released", "Released:")

    @admin.action(description="Hold the selected batches…", permissions=["hold"])
    def hold(self, request, queryset):
        return self._confirmed_move(request, queryset, "hold")

    def _confirmed_move(self, request, queryset, action: str):
        """A confirmation page with its reason first; its form posts back to the action with `post`."""
        form_class, to_status, title, question, button, done = MOVES[action]
        form = form_class(request.POST if request.POST.get("post") else None)
        if form.is_bound and form.is_valid():
            self._move(request, queryset, to_status, form.cleaned_data["reason"], done)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "question": question,
            "button": button,
            "action": action,
            "opts": self.opts,
            "form": form,
            "batches": list(queryset.select_related("merchant").order_by("created_at", "id")),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/settlements/settlementbatch/move_confirmation.html", context)

    @admin.action(description="Build the payout files of the selected batches again", permissions=["rebuild_payout_files"])
    def regenerate_files(self, request, queryset):
        user = request.user.get_username()
        for batch in queryset.select_related("merchant"):
            before = dict(batch.payout_files.values_list("kind", "sha256"))
            try:
                files = payout_files_generate(batch=batch, rebuilt_by=user, actor=admin_actor(request))
            except BusinessRuleViolation as exc:
                self.message_user(request, f"Batch {batch.id}: {exc.message} ({exc.code})", messages.ERROR)
                continue
            same = all(before.get(f.kind) == f.sha256 for f in files)
            note = "identical to the stored files" if before and same else "stored"
            self.message_user(request, f"Batch {batch.id}: payout files built, {note}.", messages.SUCCESS)

    # --- Columns and fields ---------------------------------------------------------------------

    @admin.display(description="merchant", ordering="merchant__code")
    def merchant_code(self, obj: SettlementBatch) -> str:
        return obj.merchant.code

    @admin.display(description="cut-off (UTC)", ordering="cutoff")
    def cutoff_display(self, obj: SettlementBatch) -> str:
        return instant(obj.cutoff)

    @admin.display(description="net", ordering="net_amount")
    def net_display(self, obj: SettlementBatch) -> str:
        return format_money(obj.net_amount, obj.currency)

    @admin.display(description="gross (payments)")
    def gross_display(self, obj: SettlementBatch) -> str:
        return format_money(obj.gross_amount, obj.currency)

    @admin.display(description="refunds")
    def refund_display(self, obj: SettlementBatch) -> str:
        return format_money(obj.refund_amount, obj.currency)

    @admin.display(description="fees")
    def fee_display(self, obj: SettlementBatch) -> str:
        return format_money(obj.fee_amount, obj.currency)

    @admin.display(description="fee fixed")
    def fee_fixed_display(self, obj: SettlementBatch) -> str:
        return format_money(obj.fee_fixed, obj.currency)

    @admin.display(description="fee minimum")
    def fee_minimum_display(self, obj: SettlementBatch) -> str:
        return "-" if obj.fee_minimum is None else format_money(obj.fee_minimum, obj.currency)

    @admin.display(description="payee IBAN")
    def payee_iban_display(self, obj: SettlementBatch) -> str:
        return obj.payee_iban or "-"

    @admin.display(description="payee IBAN")
    def payee_iban_masked(self, obj: SettlementBatch) -> str:
        return account_masked(obj.payee_iban)

    @admin.display(description="payee BIC")
    def payee_bic_display(self, obj: SettlementBatch) -> str:
        return obj.payee_bic or "-"

    @admin.display(description="carried forward")
    def carried_display(self, obj: SettlementBatch) -> str:
        return format_money(obj.carried_amount, obj.currency)

    @admin.display(description="lines")
    def counts(self, obj: SettlementBatch) -> str:
        return f"{obj.payment_count} payment(s), {obj.refund_count} refund(s)"

    @admin.display(description="lines and statement")
    def lines_link(self, obj: SettlementBatch) -> str:
        lines = reverse("admin:settlements_settlementline_changelist") + f"?batch__id__exact={obj.pk}"
        statement = reverse("admin:settlements_settlementbatch_statement", args=[obj.pk])
        return format_html('<a href="{}">Lines</a> · <a href="{}">Statement (CSV)</a>', lines, statement)

    @admin.display(description="payout files")
    def files(self, obj: SettlementBatch) -> str:
        files = [
            (reverse("admin:settlements_settlementbatch_file", args=[obj.pk, f.kind]), f.name, f.sha256[:12])
            for f in obj.payout_files.all()
        ]
        return format_html_join(" · ", '<a href="{}">{}</a> (sha256 {}…)', files) if files else "-"

    @admin.display(description="payout files")
    def files_listed(self, obj: SettlementBatch) -> str:
        files = [(f.name, f.sha256[:12]) for f in obj.payout_files.all()]
        return format_html_join(" · ", "{} (sha256 {}…)", files) if files else "-"


@admin.register(SettlementLine)
class SettlementLineAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "batch", "kind", "source", "amount_display", "fee_display", "net_display", "occurred"]
    list_select_related = ["batch"]
    list_filter = ["kind"]
    show_full_result_count = False
    list_per_page = 100
    search_fields = ["=payment__id", "=refund__id", "=batch__id"]
    fields = ["batch", "kind", "payment", "refund", "carried_batch", "amount_display", "fee_display", "net_display", "occurred"]

    @admin.display(description="payment, refund or batch")
    def source(self, obj: SettlementLine) -> str:
        """What the line settles: a payment, a refund, or an earlier batch carried forward."""
        return obj.refund_id or obj.payment_id or obj.carried_batch_id or "-"

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: SettlementLine) -> str:
        return format_money(obj.amount, obj.batch.currency)

    @admin.display(description="fee", ordering="fee")
    def fee_display(self, obj: SettlementLine) -> str:
        return format_money(obj.fee, obj.batch.currency)

    @admin.display(description="net", ordering="net")
    def net_display(self, obj: SettlementLine) -> str:
        return format_money(obj.net, obj.batch.currency)

    @admin.display(description="captured or refunded (UTC)", ordering="occurred_at")
    def occurred(self, obj: SettlementLine) -> str:
        return instant(obj.occurred_at)


# --- settle-daily's schedule -----------------------------------------------------------------------
# The job settles up to the latest time its crontab names (services.settlement_schedule): a crontab
# that names several times a day, or a local time a daylight saving change skips or repeats, would
# run at other times than it settles up to. django-celery-beat's own admin is kept, with this check
# added to its two forms that can change settle-daily's crontab.


def _crontab_problem(crontab: CrontabSchedule | None, **changed) -> str:
    if crontab is None:
        return "settle-daily runs on a crontab (one hour and one minute each day)."
    fields = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year", "timezone")
    return settle_daily_crontab_problem(**{name: str(changed.get(name, getattr(crontab, name))) for name in fields})


class SettleDailyPeriodicTaskForm(beat_admin.PeriodicTaskForm):
    def clean(self):
        data = super().clean()
        if (data.get("name") or self.instance.name) == SCHEDULE_NAME:
            if problem := _crontab_problem(data.get("crontab")):
                self.add_error("crontab", problem)
            elif data.get("interval") or data.get("solar") or data.get("clocked"):
                self.add_error(None, "settle-daily runs on its crontab alone.")
        return data


class SettleDailyCrontabForm(forms.ModelForm):
    class Meta:
        model = CrontabSchedule
        fields = "__all__"

    def clean(self):
        data = super().clean()
        if self.instance.pk and PeriodicTask.objects.filter(name=SCHEDULE_NAME, crontab=self.instance).exists():
            if problem := _crontab_problem(self.instance, **{k: v for k, v in data.items() if v is not None}):
                raise forms.ValidationError(problem)
        return data


for _model, _admin_class, _form in (
    (PeriodicTask, beat_admin.PeriodicTaskAdmin, SettleDailyPeriodicTaskForm),
    (CrontabSchedule, beat_admin.CrontabScheduleAdmin, SettleDailyCrontabForm),
):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, type(_admin_class.__name__, (_admin_class,), {"form": _form}))


# Reconciliation's admin lives in its package; importing it registers it with the admin site.
from settlements.reconciliation import admin as reconciliation_admin  # noqa: E402,F401
