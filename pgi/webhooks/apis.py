"""The webhooks API: a merchant's endpoints (register, read, change, delete, rotate the secret) and
their deliveries (list, read with attempts, redeliver). Built as the refunds API is, from the same
pieces in pgi.api; a merchant key sees its own merchant's, a platform key every merchant's."""

import django_filters
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.response import Response

from pgi.api.filters import StrictFilterSet
from pgi.api.idempotency import idempotent
from pgi.api.openapi import (
    KEYED,
    PAGE_PARAMETERS,
    POSTED,
    POSTED_PARAMETERS,
    RESPONSE_HEADERS,
    error_example,
    error_responses,
)
from pgi.api.pagination import CreatedCursorPagination
from pgi.api.serializers import (
    BlankAsNullCharField,
    PageSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictInputSerializer,
    StrictListField,
)
from pgi.api.views import ApiView
from pgi.errors import BusinessRuleViolation, ErrorDetail, PermissionDenied, ValidationFailed
from pgi.merchants.principals import Principal
from pgi.merchants.selectors import merchant_get_by_code

from .models import ALL_EVENTS, EVENT_TYPES, DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from .selectors import delivery_get, delivery_list, endpoint_get, endpoint_list
from .services import (
    delivery_redeliver,
    endpoint_create,
    endpoint_delete,
    endpoint_secret_rotate,
    endpoint_update,
)

TAG = "Webhooks"

WEBHOOK_ERRORS = {
    403: "A merchant key naming another merchant (MERCHANT_NOT_ALLOWED)",
    404: "No such webhook endpoint for this key (WEBHOOK_ENDPOINT_NOT_FOUND)",
    "404-delivery": "No such webhook delivery for this key (WEBHOOK_DELIVERY_NOT_FOUND)",
    "400-endpoint": "Malformed JSON, an invalid field (a URL PGI does not post to, an unknown event type) or "
    "Idempotency-Key, or an unknown query parameter (VALIDATION_ERROR, MALFORMED_JSON); a card number in any field "
    "(CARD_NUMBER_NOT_ACCEPTED)",
    422: "The merchant has its most endpoints (WEBHOOK_ENDPOINT_LIMIT), no such merchant (UNKNOWN_MERCHANT), or "
    "the Idempotency-Key was used with another request (IDEMPOTENCY_KEY_REUSED)",
    "422-key": "The Idempotency-Key was used with another request (IDEMPOTENCY_KEY_REUSED)",
    "422-redeliver": "The endpoint is disabled (WEBHOOK_ENDPOINT_DISABLED), or the Idempotency-Key was used with "
    "another request (IDEMPOTENCY_KEY_REUSED)",
}
# PATCH reads a JSON body as POST does, without an Idempotency-Key (it sets, so a repeat changes nothing).
PATCHED = ("400-endpoint", 411, 413, 415)


def errors(*codes: int | str) -> dict:
    return error_responses(*codes, descriptions=WEBHOOK_ERRORS)


EVENT_TYPE_SCHEMA = {"type": "string", "enum": [*EVENT_TYPES, ALL_EVENTS]}
URL_SCHEMA = {"type": "string", "format": "uri", "maxLength": 2048, "pattern": "^https?://", "example": "https://shop.example.com/pgi/webhooks"}

ENDPOINT_NOT_FOUND_EXAMPLE = error_example(
    "No such endpoint", 404, "WEBHOOK_ENDPOINT_NOT_FOUND", "No webhook endpoint with this id."
)
DELIVERY_NOT_FOUND_EXAMPLE = error_example(
    "No such delivery", 404, "WEBHOOK_DELIVERY_NOT_FOUND", "No webhook delivery with this id."
)
URL_REFUSED_EXAMPLE = error_example(
    "A URL PGI does not post to",
    400,
    "VALIDATION_ERROR",
    "The URL is not accepted.",
    [{"field": "url", "message": "The host 10.0.0.5 resolves to a non-public address (10.0.0.5)."}],
)
EXAMPLE_ENDPOINT = {
    "id": "we_06f3k2a9c1m4q9r7t5w0x2y4z6",
    "merchant": "merchant456",
    "url": "https://shop.example.com/pgi/webhooks",
    "eventTypes": ["PAYMENT_PROCESSED", "PAYMENT_FAILED", "REFUND_COMPLETED"],
    "enabled": True,
    "description": "Order service",
    "previousSecretExpiresAt": None,
    "createdAt": "2024-05-18T09:10:11Z",
    "updatedAt": "2024-05-18T09:10:11Z",
}
CREATED_EXAMPLE = OpenApiExample(
    "An endpoint registered",
    value={**EXAMPLE_ENDPOINT, "secret": "whsec_3pV0bq9mZ1yqgkq0Yx3m5Xo2b8q1c7Rr2kqzW9dJ1Tw"},
    response_only=True,
    status_codes=["201"],
)
REQUEST_EXAMPLE = OpenApiExample(
    "Outcomes to the order service",
    value={
        "url": "https://shop.example.com/pgi/webhooks",
        "eventTypes": ["PAYMENT_PROCESSED", "PAYMENT_FAILED", "REFUND_COMPLETED"],
        "description": "Order service",
    },
    request_only=True,
)


@extend_schema_field(URL_SCHEMA)
class WebhookUrlField(StrictCharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 2048)
        kwargs.setdefault("help_text", "http or https; its host must resolve to public addresses.")
        super().__init__(**kwargs)


@extend_schema_field({"type": "array", "items": EVENT_TYPE_SCHEMA, "minItems": 1, "maxItems": len(EVENT_TYPES),
                      "uniqueItems": True})
class EventTypesField(StrictListField):
    def __init__(self, **kwargs):
        kwargs.setdefault("child", StrictCharField(max_length=64))
        kwargs.setdefault("min_length", 1)
        kwargs.setdefault("max_length", len(EVENT_TYPES))
        kwargs.setdefault(
            "help_text", 'The event types sent to this endpoint, or `["*"]` alone for all, those added later included.'
        )
        super().__init__(**kwargs)


class WebhookEndpointCreateInputSerializer(StrictInputSerializer):
    read_only_names = ("id", "secret", "createdAt", "updatedAt", "previousSecretExpiresAt")

    url = WebhookUrlField()
    eventTypes = EventTypesField()
    description = StrictCharField(
        max_length=255, required=False, allow_blank=True, allow_null=True, default="",
        help_text="A note for the merchant's own use; null or empty for none.",
    )
    enabled = StrictBooleanField(required=False, default=True)
    merchant = StrictCharField(
        max_length=64,
        required=False,
        help_text="The merchant's code. Required for a platform key; a merchant key may give only its own.",
    )


class WebhookEndpointUpdateInputSerializer(StrictInputSerializer):
    read_only_names = ("id", "merchant", "secret", "createdAt", "updatedAt", "previousSecretExpiresAt")

    url = WebhookUrlField(required=False)
    eventTypes = EventTypesField(required=False)
    description = StrictCharField(
        max_length=255, required=False, allow_blank=True, allow_null=True, help_text="null or empty clears it."
    )
    enabled = StrictBooleanField(required=False)


@extend_schema_serializer(component_name="WebhookEndpoint")
class WebhookEndpointOutputSerializer(serializers.ModelSerializer):
    merchant = serializers.CharField(source="merchant.code")
    eventTypes = serializers.ListField(source="event_types", child=serializers.CharField())
    description = BlankAsNullCharField()
    previousSecretExpiresAt = serializers.DateTimeField(
        source="previous_secret_expires_at",
        allow_null=True,
        help_text="During a rotation: until when the previous secret signs too (a second v1).",
    )
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "merchant", "url", "eventTypes", "enabled", "description", "previousSecretExpiresAt",
                  "createdAt", "updatedAt"]
        read_only_fields = fields


@extend_schema_serializer(component_name="WebhookEndpointWithSecret")
class WebhookEndpointSecretSerializer(WebhookEndpointOutputSerializer):
    secret = serializers.CharField(
        help_text="The signing secret (`whsec_…`). Shown in this answer only: keep it now."
    )

    class Meta(WebhookEndpointOutputSerializer.Meta):
        fields = [*WebhookEndpointOutputSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookEndpointPageSerializer(PageSerializer):
    results = WebhookEndpointOutputSerializer(many=True)


@extend_schema_serializer(component_name="WebhookAttempt")
class WebhookAttemptSerializer(serializers.ModelSerializer):
    requestedBy = BlankAsNullCharField(source="requested_by", help_text="Who asked for a redelivery.")
    startedAt = serializers.DateTimeField(source="started_at")
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)
    durationMs = serializers.IntegerField(source="duration_ms", allow_null=True)
    responseStatus = serializers.IntegerField(
        source="response_status", allow_null=True, help_text="null: no answer (see `error`)."
    )
    responseBody = serializers.CharField(source="response_body", help_text="The start of your answer's body.")
    error = BlankAsNullCharField()

    class Meta:
        model = WebhookAttempt
        fields = ["number", "trigger", "requestedBy", "url", "startedAt", "finishedAt", "durationMs",
                  "responseStatus", "responseBody", "error", "succeeded"]
        read_only_fields = fields


@extend_schema_serializer(component_name="WebhookDelivery")
class WebhookDeliveryOutputSerializer(serializers.ModelSerializer):
    endpointId = serializers.CharField(source="endpoint_id")
    eventId = serializers.UUIDField(source="event_id")
    eventType = serializers.CharField(source="event_type")
    attemptCount = serializers.IntegerField(source="attempts")
    nextAttemptAt = serializers.DateTimeField(
        source="next_attempt_at", allow_null=True, help_text="When the next attempt is due; null once finished."
    )
    lastResponseStatus = serializers.IntegerField(source="last_response_status", allow_null=True)
    lastError = BlankAsNullCharField(source="last_error")
    createdAt = serializers.DateTimeField(source="created_at")
    succeededAt = serializers.DateTimeField(source="succeeded_at", allow_null=True)
    failedAt = serializers.DateTimeField(source="failed_at", allow_null=True, help_text="When PGI gave up.")

    class Meta:
        model = WebhookDelivery
        fields = ["id", "endpointId", "eventId", "eventType", "status", "attemptCount", "nextAttemptAt",
                  "lastResponseStatus", "lastError", "createdAt", "succeededAt", "failedAt"]
        read_only_fields = fields


@extend_schema_serializer(component_name="WebhookDeliveryDetail")
class WebhookDeliveryDetailSerializer(WebhookDeliveryOutputSerializer):
    body = serializers.CharField(help_text="The event as posted, byte for byte (JSON text).")
    attempts = WebhookAttemptSerializer(source="attempt_rows", many=True, help_text="Every attempt, oldest first.")

    class Meta(WebhookDeliveryOutputSerializer.Meta):
        fields = [*WebhookDeliveryOutputSerializer.Meta.fields, "body", "attempts"]
        read_only_fields = fields


class WebhookDeliveryPageSerializer(PageSerializer):
    results = WebhookDeliveryOutputSerializer(many=True)


class EndpointPageFilter(StrictFilterSet):
    other_params = ("cursor", "limit")

    class Meta:
        model = WebhookEndpoint
        fields: list[str] = []


class DeliveryFilter(StrictFilterSet):
    other_params = ("cursor", "limit")

    status = django_filters.MultipleChoiceFilter(
        choices=DeliveryStatus.choices, help_text="One or more statuses: `?status=pending&status=failed`."
    )

    class Meta:
        model = WebhookDelivery
        fields: list[str] = []


def _checked(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data)
    if not serializer.is_valid():
        raise serializers.ValidationError(serializer.errors)
    return serializer.validated_data


def _page(view: ApiView, request, filter_class, queryset, serializer_class) -> Response:
    queryset = filter_class.filtered(request.query_params, queryset=queryset)
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


def _merchant_for(principal: Principal, code: str | None):
    """The merchant an endpoint is registered for: the key's own, or the one a platform key names."""
    if not principal.is_platform:
        if code not in (None, principal.merchant.code):
            raise PermissionDenied(
                "This API key may only register endpoints for its own merchant.",
                code="MERCHANT_NOT_ALLOWED",
                details=[ErrorDetail("merchant", f"Must be {principal.merchant.code} or omitted.")],
            )
        return principal.merchant
    if not code:
        raise ValidationFailed(
            "A platform key must name the merchant.",
            details=[ErrorDetail("merchant", "This field is required for platform keys.")],
        )
    merchant = merchant_get_by_code(code=code)
    if merchant is None:
        raise BusinessRuleViolation(
            f"No merchant {code}.", code="UNKNOWN_MERCHANT", details=[ErrorDetail("merchant", "Unknown merchant.")]
        )
    return merchant


def _with_secret(endpoint: WebhookEndpoint, secret: str, status_code: int) -> Response:
    endpoint.secret = secret
    return Response(WebhookEndpointSecretSerializer(endpoint).data, status=status_code)


ENDPOINT_PARAMETER = OpenApiParameter(
    "endpoint_id", {"type": "string", "pattern": "^we_[0-9a-hjkmnp-tv-z]{26}$"}, OpenApiParameter.PATH
)
DELIVERY_PARAMETER = OpenApiParameter(
    "delivery_id", {"type": "string", "pattern": "^wd_[0-9a-hjkmnp-tv-z]{26}$"}, OpenApiParameter.PATH
)


class WebhookEndpointCollectionApi(ApiView):
    key_scope = "webhooks"

    pagination_class = CreatedCursorPagination

    def known_query_params(self, request):
        return None if request.method == "GET" else frozenset()

    @extend_schema(
        tags=[TAG],
        operation_id="webhook_endpoints_create",
        summary="Register a webhook endpoint",
        description="PGI will POST the chosen events of the merchant to `url`, signed with the endpoint's "
        "secret (header `PGI-Signature`), retrying failures for over a day. The answer carries the `secret`: "
        "it is shown this once (and on a rotation). Events from before the endpoint existed are not sent. "
        "See the webhooks guide at /docs/10-webhooks/.",
        parameters=POSTED_PARAMETERS,
        request=WebhookEndpointCreateInputSerializer,
        examples=[REQUEST_EXAMPLE, CREATED_EXAMPLE, URL_REFUSED_EXAMPLE],
        responses={201: WebhookEndpointSecretSerializer, **errors("400-endpoint", *POSTED[1:], *KEYED, 403, 422)},
    )
    @idempotent
    def post(self, request):
        data = _checked(WebhookEndpointCreateInputSerializer, request)
        endpoint, secret = endpoint_create(
            merchant=_merchant_for(request.user, data.get("merchant")),
            url=data["url"],
            event_types=data["eventTypes"],
            description=data["description"] or "",
            enabled=data["enabled"],
        )
        return _with_secret(endpoint, secret, status.HTTP_201_CREATED)

    @extend_schema(
        tags=[TAG],
        operation_id="webhook_endpoints_list",
        summary="List webhook endpoints",
        description="The key's merchant's endpoints (every merchant's for a platform key), newest first, with "
        "cursor pagination: follow `next` until it is null. Secrets are not shown.",
        parameters=[*PAGE_PARAMETERS, *RESPONSE_HEADERS],
        responses={200: WebhookEndpointPageSerializer, **errors("400-query", *KEYED)},
    )
    def get(self, request):
        queryset = endpoint_list(principal=request.user)
        return _page(self, request, EndpointPageFilter, queryset, WebhookEndpointOutputSerializer)


class WebhookEndpointDetailApi(ApiView):
    key_scope = "webhooks"

    @extend_schema(
        tags=[TAG],
        operation_id="webhook_endpoints_retrieve",
        summary="Get a webhook endpoint",
        parameters=[ENDPOINT_PARAMETER, *RESPONSE_HEADERS],
        examples=[ENDPOINT_NOT_FOUND_EXAMPLE],
        responses={200: WebhookEndpointOutputSerializer, **errors("400-query", *KEYED, 404)},
    )
    def get(self, request, endpoint_id: str):
        return Response(WebhookEndpointOutputSerializer(endpoint_get(principal=request.user, endpoint_id=endpoint_id)).data)

    @extend_schema(
        tags=[TAG],
        operation_id="webhook_endpoints_update",
        summary="Change a webhook endpoint",
        description="Changes the fields given: `url` (checked as on registration), `eventTypes`, `description`, "
        "`enabled`. A disabled endpoint gets no new deliveries and its pending ones wait until it is enabled.",
        parameters=[ENDPOINT_PARAMETER, *RESPONSE_HEADERS],
        request=WebhookEndpointUpdateInputSerializer,
        examples=[ENDPOINT_NOT_FOUND_EXAMPLE, URL_REFUSED_EXAMPLE],
        responses={200: WebhookEndpointOutputSerializer, **errors(*PATCHED, *KEYED, 404)},
    )
    def patch(self, request, endpoint_id: str):
        endpoint = endpoint_get(principal=request.user, endpoint_id=endpoint_id)
        data = _checked(WebhookEndpointUpdateInputSerializer, request)
        endpoint = endpoint_update(
            endpoint=endpoint,
            url=data.get("url"),
            event_types=data.get("eventTypes"),
            description=(data["description"] or "") if "description" in data else None,
            enabled=data.get("enabled"),
        )
        return Response(WebhookEndpointOutputSerializer(endpoint).data)

    @extend_schema(
        tags=[TAG],
        operation_id="webhook_endpoints_destroy",
        summary="Delete a webhook endpoint",
        description="Nothing more is sent to it; its deliveries and their attempts are deleted with it.",
        parameters=[ENDPOINT_PARAMETER, *RESPONSE_HEADERS],
        examples=[ENDPOINT_NOT_FOUND_EXAMPLE],
        responses={204: OpenApiResponse(description="Deleted."), **errors("400-query", *KEYED, 404)},
    )
    def delete(self, request, endpoint_id: str):
        endpoint_delete(endpoint=endpoint_get(principal=request.user, endpoint_id=endpoint_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookEndpointRotateSecretApi(ApiView):
    key_scope = "webhooks"

    @extend_schema(
        tags=[TAG],
        operation_id="webhook_endpoints_rotate_secret",
        summary="Rotate a webhook endpoint's secret",
        description="Issues a new secret, shown in this answer only. The previous one keeps signing too (a second "
        "`v1` in `PGI-Signature`) until `previousSecretExpiresAt` (24 hours by default), so that the receiver "
        "can switch without refusing a delivery. No body.",
        parameters=[ENDPOINT_PARAMETER, *POSTED_PARAMETERS],
        request=None,
        examples=[ENDPOINT_NOT_FOUND_EXAMPLE],
        responses={200: WebhookEndpointSecretSerializer, **errors(*POSTED, *KEYED, 404, "422-key")},
    )
    @idempotent
    def post(self, request, endpoint_id: str):
        endpoint = endpoint_get(principal=request.user, endpoint_id=endpoint_id)
        secret = endpoint_secret_rotate(endpoint=endpoint)
        return _with_secret(endpoint, secret, status.HTTP_200_OK)


class WebhookEndpointDeliveriesApi(ApiView):
    key_scope = "webhooks"

    pagination_class = CreatedCursorPagination

    def known_query_params(self, request):
        return None

    @extend_schema(
        tags=[TAG],
        operation_id="webhook_deliveries_list",
        summary="List an endpoint's deliveries",
        description="Newest first, with cursor pagination; `status` filters (`pending`: an attempt is due or "
        "scheduled, `succeeded`, `failed`: PGI gave up).",
        parameters=[
            ENDPOINT_PARAMETER,
            OpenApiParameter(
                "status",
                {"type": "array", "items": {"type": "string", "enum": list(DeliveryStatus.values)}},
                explode=True,
                description=DeliveryFilter.base_filters["status"].extra["help_text"],
            ),
            *PAGE_PARAMETERS,
            *RESPONSE_HEADERS,
        ],
        examples=[ENDPOINT_NOT_FOUND_EXAMPLE],
        responses={200: WebhookDeliveryPageSerializer, **errors("400-query", *KEYED, 404)},
    )
    def get(self, request, endpoint_id: str):
        endpoint = endpoint_get(principal=request.user, endpoint_id=endpoint_id)
        queryset = delivery_list(principal=request.user, endpoint=endpoint)
        return _page(self, request, DeliveryFilter, queryset, WebhookDeliveryOutputSerializer)


class WebhookDeliveryDetailApi(ApiView):
    key_scope = "webhooks"

    @extend_schema(
        tags=[TAG],
        operation_id="webhook_deliveries_retrieve",
        summary="Get a webhook delivery with its attempts",
        parameters=[DELIVERY_PARAMETER, *RESPONSE_HEADERS],
        examples=[DELIVERY_NOT_FOUND_EXAMPLE],
        responses={200: WebhookDeliveryDetailSerializer, **errors("400-query", *KEYED, "404-delivery")},
    )
    def get(self, request, delivery_id: str):
        delivery = delivery_get(principal=request.user, delivery_id=delivery_id)
        return Response(WebhookDeliveryDetailSerializer(delivery).data)


class WebhookDeliveryRedeliverApi(ApiView):
    key_scope = "webhooks"

    @extend_schema(
        tags=[TAG],
        operation_id="webhook_deliveries_redeliver",
        summary="Redeliver a webhook delivery",
        description="Asks for an attempt now (within seconds, by a worker; never inside this request). A "
        "succeeded or failed delivery gets one more attempt, without retries after it; a pending one has its "
        "next attempt brought forward. Asking again before the attempt runs adds none. 202 with the delivery; "
        "follow it with `GET /v1/webhook-deliveries/{id}`. No body.",
        parameters=[DELIVERY_PARAMETER, *POSTED_PARAMETERS],
        request=None,
        examples=[DELIVERY_NOT_FOUND_EXAMPLE],
        responses={202: WebhookDeliveryDetailSerializer, **errors(*POSTED, *KEYED, "404-delivery", "422-redeliver")},
    )
    @idempotent
    def post(self, request, delivery_id: str):
        delivery = delivery_get(principal=request.user, delivery_id=delivery_id)
        delivery = delivery_redeliver(delivery=delivery, requested_by=f"api:{request.auth.name}")
        delivery = delivery_get(principal=request.user, delivery_id=delivery.id)
        return Response(WebhookDeliveryDetailSerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
