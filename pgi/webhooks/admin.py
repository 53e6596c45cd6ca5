"""Staff admin for merchant webhooks: register and change a merchant's endpoints, rotate a secret,
see every delivery with its attempts, and redeliver.

Endpoints are written through the services, as from the API: the URL is checked, and the secret is
shown once, on the page that answers the add form or the rotation, never on the endpoint's page.
Deliveries are read-only; redelivering (a list action and a button) needs its own permission.
"""

import secrets
import uuid

from django import forms
from django.contrib import admin, messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from pgi.admin_format import instant
from pgi.admin_readonly import ReadOnlyAdminMixin
from pgi.audit.admin_hooks import admin_actor
from pgi.errors import BusinessRuleViolation

from .models import ALL_EVENTS, EVENT_TYPES, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from .net import UnsafeUrl, url_check
from .services import delivery_redeliver, endpoint_create, endpoint_secret_rotate, endpoint_update

ACTION_LIMIT = 200
EVENT_CHOICES = [(ALL_EVENTS, "All event types, those added later included"), *[(name, name) for name in EVENT_TYPES]]


class EndpointForm(forms.ModelForm):
    """The endpoint's fields as staff set them; checked as the API checks them."""

    url = forms.URLField(max_length=2048, assume_scheme="https", help_text="http or https; its host must resolve to public addresses.")
    event_types = forms.MultipleChoiceField(choices=EVENT_CHOICES, widget=forms.CheckboxSelectMultiple)
    issue_token = forms.CharField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = WebhookEndpoint
        fields = ["merchant", "url", "event_types", "description", "enabled"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "issue_token" in self.fields and not self.is_bound:
            self.fields["issue_token"].initial = secrets.token_urlsafe(16)

    def clean_url(self):
        url = self.cleaned_data["url"]
        try:
            url_check(url)
        except UnsafeUrl as exc:
            raise forms.ValidationError(str(exc)) from exc
        return url

    def clean_event_types(self):
        chosen = self.cleaned_data["event_types"]
        if ALL_EVENTS in chosen and len(chosen) > 1:
            raise forms.ValidationError("Tick 'All event types' alone, or the types you want.")
        return chosen

    def clean(self):
        cleaned = super().clean()
        # As for API keys: the page that shows the secret answers a POST; reloading it must not
        # register a second endpoint. Checked last, so that a form with errors keeps its token.
        token = cleaned.get("issue_token")
        if self.instance._state.adding and token and not self.errors:
            if not cache.add(f"pgi:webhook-endpoint-issue:{token}", 1, timeout=86400):
                raise forms.ValidationError("This form has already registered an endpoint. Open 'Add' again.")
        return cleaned

    def _post_clean(self):
        pass  # the row is written by the services


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ["id", "merchant", "url", "types", "enabled", "created"]
    list_filter = ["enabled", ("merchant", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["merchant"]
    search_fields = ["=id", "url"]
    search_help_text = "Exact endpoint id (we_…), or part of the URL."
    show_full_result_count = False
    readonly_fields = ["id", "secret_state", "deliveries_link", "created", "updated"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["merchant", "url", "event_types", "description", "enabled", "issue_token"]
        return ["id", "merchant", "url", "event_types", "description", "enabled", "secret_state", "deliveries_link",
                "created", "updated"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "merchant"] if obj is not None else []

    @admin.display(description="event types")
    def types(self, obj: WebhookEndpoint) -> str:
        return ", ".join(obj.event_types)

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, obj: WebhookEndpoint) -> str:
        return instant(obj.created_at)

    @admin.display(description="updated (UTC)")
    def updated(self, obj: WebhookEndpoint) -> str:
        return instant(obj.updated_at)

    @admin.display(description="secret")
    def secret_state(self, obj: WebhookEndpoint) -> str:
        # Never the secret itself: it was shown once, when issued.
        if obj.previous_secret_expires_at and obj.previous_secret:
            return f"Set (not shown). Rotated: the previous secret signs too until {instant(obj.previous_secret_expires_at)}."
        return "Set (not shown)."

    @admin.display(description="deliveries")
    def deliveries_link(self, obj: WebhookEndpoint) -> str:
        url = reverse("admin:webhooks_webhookdelivery_changelist") + f"?endpoint__id__exact={obj.pk}"
        return format_html('<a href="{}">{} deliveries</a>', url, obj.deliveries.count())

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            endpoint_update(
                endpoint=obj, url=data["url"], event_types=data["event_types"], description=data["description"],
                enabled=data["enabled"],
            )
            return
        endpoint, secret = endpoint_create(
            merchant=data["merchant"], url=data["url"], event_types=data["event_types"],
            description=data["description"], enabled=data["enabled"],
        )
        for field in WebhookEndpoint._meta.concrete_fields:  # the admin goes on with `obj` (log, response)
            setattr(obj, field.attname, getattr(endpoint, field.attname))
        obj._state.adding, obj._state.db = False, endpoint._state.db
        request._pgi_issued_secret = secret

    def response_add(self, request, obj, post_url_continue=None):
        return self._secret_page(request, obj, request._pgi_issued_secret, "Webhook endpoint registered")

    def _secret_page(self, request, endpoint: WebhookEndpoint, secret: str, title: str):
        """The secret, on this response only (not in the session, not in a message cookie)."""
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "endpoint": endpoint,
            "secret": secret,
            "change_url": reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk]),
            "changelist_url": reverse("admin:webhooks_webhookendpoint_changelist"),
        }
        response = TemplateResponse(request, "admin/webhooks/webhookendpoint/secret.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def get_urls(self):
        rotate = path(
            "<path:object_id>/rotate-secret/",
            self.admin_site.admin_view(require_POST(self.rotate_view)),
            name="webhooks_webhookendpoint_rotate",
        )
        return [rotate, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        endpoint = self.get_object(request, object_id)
        buttons = []
        if endpoint is not None and self.has_change_permission(request, endpoint):
            url = reverse("admin:webhooks_webhookendpoint_rotate", args=[endpoint.pk])
            buttons.append({"name": "rotate", "label": "Rotate the secret", "url": url})
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "webhook_actions": buttons})

    def rotate_view(self, request, object_id: str):
        endpoint = self.get_object(request, object_id)
        if endpoint is None:
            raise Http404
        if not self.has_change_permission(request, endpoint):
            raise PermissionDenied
        with transaction.atomic():  # the new secret and its audit event (recorded by log_change) together
            secret = endpoint_secret_rotate(endpoint=endpoint)
            self.log_change(request, endpoint, "Rotated the secret.")
        return self._secret_page(request, endpoint, secret, "Webhook secret rotated")


class WebhookAttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = WebhookAttempt
    fields = ["number", "trigger", "requested_by", "started", "duration_ms", "response_status", "error",
              "response_body"]
    extra = 0
    can_delete = False
    verbose_name_plural = "attempts"

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("webhooks.view_webhookdelivery")

    @admin.display(description="started (UTC)")
    def started(self, obj: WebhookAttempt) -> str:
        return instant(obj.started_at)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "event_type", "endpoint_url", "merchant", "status", "attempts", "next_attempt",
                    "last_response_status", "created"]
    list_filter = ["status", "event_type", ("endpoint__merchant", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["endpoint__merchant"]
    search_fields = ["=id"]
    search_help_text = "Exact delivery id (wd_…), endpoint id (we_…) or event id."
    show_full_result_count = False
    list_per_page = 50
    actions = ["redeliver"]
    inlines = [WebhookAttemptInline]
    fields = ["id", "endpoint", "merchant", "event_id", "event_type", "status", "attempts", "next_attempt",
              "last_response_status", "last_error", "created", "succeeded_at", "failed_at", "body"]

    @admin.display(description="merchant")
    def merchant(self, obj: WebhookDelivery) -> str:
        return obj.endpoint.merchant.code

    @admin.display(description="endpoint URL")
    def endpoint_url(self, obj: WebhookDelivery) -> str:
        return obj.endpoint.url  # the id is on the delivery's page; the list stays within a laptop's width

    @admin.display(description="next attempt (UTC)", ordering="next_attempt_at")
    def next_attempt(self, obj: WebhookDelivery) -> str:
        return instant(obj.next_attempt_at)

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, obj: WebhookDelivery) -> str:
        return instant(obj.created_at)

    def get_search_results(self, request, queryset, search_term):
        """Exact matches only, each an index lookup: a delivery, an endpoint, or an event id."""
        term = search_term.strip().lower()
        if not term:
            return queryset, False
        if term.startswith("we_"):
            return queryset.filter(endpoint_id=term), False
        if term.startswith("wd_"):
            return queryset.filter(pk=term), False
        try:
            return queryset.filter(event_id=uuid.UUID(term)), False
        except ValueError:  # neither: nothing has it
            return queryset.none(), False

    def has_redeliver_permission(self, request) -> bool:
        return request.user.has_perm("webhooks.redeliver_webhookdelivery")

    @admin.action(description="Redeliver the selected deliveries", permissions=["redeliver"])
    def redeliver(self, request, queryset):
        if queryset.count() > ACTION_LIMIT:
            self.message_user(request, f"Select at most {ACTION_LIMIT} deliveries at a time.", messages.ERROR)
            return
        asked, actor = 0, admin_actor(request)
        for delivery in queryset.select_related("endpoint"):
            try:
                delivery_redeliver(delivery=delivery, requested_by=f"staff:{request.user.get_username()}", actor=actor)
            except BusinessRuleViolation as exc:
                self.message_user(request, f"{delivery.pk} not redelivered: {exc.message} ({exc.code})", messages.ERROR)
                continue
            asked += 1
        if asked:
            self.message_user(request, f"Redelivery asked for {asked}; a worker sends within seconds.", messages.SUCCESS)

    def get_urls(self):
        act = path(
            "<path:object_id>/redeliver/",
            self.admin_site.admin_view(require_POST(self.redeliver_view)),
            name="webhooks_webhookdelivery_redeliver",
        )
        return [act, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        buttons = []
        if "redeliver" in self.get_actions(request):
            url = reverse("admin:webhooks_webhookdelivery_redeliver", args=[object_id])
            buttons.append({"name": "redeliver", "label": "Redeliver", "url": url})
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "webhook_actions": buttons})

    def redeliver_view(self, request, object_id: str):
        if "redeliver" not in self.get_actions(request):
            raise PermissionDenied
        queryset = self.get_queryset(request).filter(pk=object_id)
        if not queryset.exists():
            raise Http404
        self.redeliver(request, queryset)
        return redirect("admin:webhooks_webhookdelivery_change", object_id)

