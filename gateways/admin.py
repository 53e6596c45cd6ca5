"""The gateways app's admin: every notification, the gateway status page (circuit breakers and
simulator switches), and the merchant's gateway routes on the merchant's page.

The simulator's ledger pages live with the simulator (gateways/simulator/admin.py); the import
below registers them.
"""

from datetime import datetime
from datetime import timezone as dt_timezone
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html
from django.views.generic import RedirectView

from pgi.admin_format import instant
from pgi.admin_readonly import ReadOnlyAdminMixin
from pgi.audit.admin_hooks import admin_actor
from pgi.audit.services import audit_record
from pgi.admin_site import Page
from pgi.merchants.admin import merchant_inline_add
from pgi.money import UnknownCurrency, currency_exponent, format_money

from .breaker import breaker_for
from .models import GatewayNotification, GatewayRoute
from .registry import configured_codes, get_connector
from .simulator import admin as simulator_admin  # noqa: F401 - registers the simulator's ledger pages
from .simulator.connector import SimulatorConnector, simulator_outage


# --- Notifications and gateway status -------------------------------------------------------------


@admin.register(GatewayNotification)
class GatewayNotificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every verified webhook notification, once per gateway event id. `unmatched` ones name no
    payment of their gateway: they are kept for reconciliation."""

    # The gateway's own status word is on each notification's page; the outcome says what PGI did.
    list_display = ["received", "gateway", "event_type", "payment_id", "amount_display", "outcome_code"]
    list_filter = ["outcome", "gateway", "operation"]
    search_fields = ["=payment_id", "=event_id", "=gateway_reference", "=refund_id"]
    search_help_text = "Exact PGI payment id, gateway event id, gateway reference or refund id."
    date_hierarchy = "received_at"
    show_full_result_count = False
    fields = [
        "received_at",
        "gateway",
        "event_id",
        "event_type",
        "operation",
        "payment_id",
        "refund_id",
        "gateway_reference",
        "status",
        "amount_display",
        "error_code",
        "outcome",
        "detail",
    ]

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: GatewayNotification) -> str:
        return "-" if obj.amount is None else format_money(obj.amount, obj.currency)

    @admin.display(description="outcome", ordering="outcome")
    def outcome_code(self, obj: GatewayNotification) -> str:
        # The word alone in the list, its explanation on hover and on the notification's page.
        return format_html('<span title="{}">{}</span>', obj.get_outcome_display(), obj.outcome)

    @admin.display(description="received (UTC)", ordering="received_at")
    def received(self, obj: GatewayNotification) -> str:
        return instant(obj.received_at)

    def get_urls(self):
        # The status page once lived here; bookmarks of it still work.
        old_status = RedirectView.as_view(pattern_name="admin:gateways_status", permanent=True)
        return [path("status/", old_status), *super().get_urls()]


def may_view_gateways(request) -> bool:
    return request.user.has_perm("gateways.view_gatewaynotification")


def shared_state_place() -> str:
    """Where the breakers and simulator switches live (the default cache), in words for staff."""
    cache = settings.CACHES["default"]
    backend = cache["BACKEND"].rsplit(".", 1)[-1]
    if backend == "RedisCache":
        location = urlsplit(cache["LOCATION"])  # no user or password on the page
        return f"Redis at {location.hostname}:{location.port or 6379}{location.path or '/0'}, shared by every PGI process"
    if backend == "SQLiteCache":
        return f"the file {cache['LOCATION']}, shared by every PGI process of this machine"
    if backend == "LocMemCache":
        return "the memory of each process: every PGI process has its own"
    return f"the cache {cache['BACKEND']}"


def gateway_status_view(request):
    """Each configured gateway with its circuit breaker (state shared by every process) and, for
    simulators, the outage switch. Staff who may change gateway routes may reset a breaker."""
    if not may_view_gateways(request):
        raise PermissionDenied
    may_reset = request.user.has_perm("gateways.change_gatewayroute")
    if request.method == "POST":
        code = request.POST.get("reset", "")
        if not may_reset or code not in configured_codes():
            raise PermissionDenied
        breaker = breaker_for(code)
        was = breaker.snapshot().state.value
        breaker.reset()
        # The breaker lives in the cache, not the database: its event is recorded just after the reset.
        with transaction.atomic():
            audit_record(actor=admin_actor(request), action="gateway.breaker_reset", object_type="gateways.gateway",
                         object_id=code, object_repr=code, before={"state": was}, after={"state": "closed"})  # fmt: skip
        messages.success(request, f"The circuit breaker of {code} is closed again.")
        return redirect("admin:gateways_status")
    rows = []
    for code in configured_codes():
        snapshot = breaker_for(code).snapshot()
        connector = get_connector(code)
        rows.append(
            {
                "code": code,
                "name": connector.display_name or type(connector).__name__,
                "state": snapshot.state.value,
                "failures": snapshot.failures,
                "open_until": instant(datetime.fromtimestamp(snapshot.open_until, dt_timezone.utc))
                if snapshot.open_until
                else "",
                "simulator_down": simulator_outage(code) if isinstance(connector, SimulatorConnector) else None,
            }
        )
    context = {
        **admin.site.each_context(request),
        "title": "Gateway status",
        "subtitle": "Circuit breakers and simulator switches",
        "rows": rows,
        "may_reset": may_reset,
        "shared_state": shared_state_place(),
        "opts": GatewayNotification._meta,
    }
    return TemplateResponse(request, "admin/gateways/status.html", context)


admin.site.register_page(
    Page(
        route="gateways/status/",
        view=gateway_status_view,
        name="gateways_status",
        title="Gateway status",
        section="gateways",
        visible=may_view_gateways,
    )
)


# --- Routes, on the merchant's page --------------------------------------------------------------


class GatewayRouteForm(forms.ModelForm):
    gateway = forms.ChoiceField(choices=())

    class Meta:
        model = GatewayRoute
        fields = ["currency", "priority", "gateway", "is_active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["gateway"].choices = [(code, code) for code in configured_codes()]

    def clean_currency(self):
        code = self.cleaned_data["currency"].strip().upper()
        if code:
            try:
                currency_exponent(code)
            except UnknownCurrency:
                raise forms.ValidationError("Not an ISO 4217 currency, or blank for any currency.") from None
        return code


class GatewayRouteInline(admin.TabularInline):
    """The merchant's gateways per currency, tried in priority order; blank currency: any other."""

    model = GatewayRoute
    form = GatewayRouteForm
    extra = 0
    ordering = ["currency", "priority"]
    verbose_name = "gateway route"
    verbose_name_plural = (
        "gateway routes (per currency, lowest priority first; failover on unavailability only; "
        "blank currency = every currency without routes of its own; none at all = the default gateway)"
    )


# pgi imports no domain app: gateways puts its routes on the merchant page itself.
merchant_inline_add(GatewayRouteInline)
