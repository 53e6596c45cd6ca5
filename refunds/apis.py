"""The refunds API: refund a captured payment, list and read refunds. Built as the payments API is
(strict bodies and query parameters, Idempotency-Key, cursor pages, one error format), from the
same pieces in pgi.api."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from payments.apis import NOT_FOUND_EXAMPLE as PAYMENT_NOT_FOUND_EXAMPLE
from payments.selectors import payment_get, payment_id_check
from pgi.api.idempotency import idempotency_link, idempotent
from pgi.api.openapi import (
    KEYED,
    PAGE_PARAMETERS,
    POSTED,
    POSTED_PARAMETERS,
    RESPONSE_HEADERS,
    VALIDATION_ERROR_EXAMPLE,
    error_example,
    error_responses,
)
from pgi.api.pagination import CreatedCursorPagination
from pgi.api.serializers import (
    AmountField,
    BlankAsNullCharField,
    CurrencyAmountField,
    MetadataField,
    PageSerializer,
    StrictCharField,
    StrictInputSerializer,
    input_once,
)
from pgi.api.views import ApiView, with_location

from .filters import RefundFilter, RefundPageFilter
from .models import Refund
from .selectors import refund_get, refund_list
from .services import refund_create

TAG = "Refunds"

# This app's own error descriptions; the common ones are pgi.api.openapi.COMMON_ERRORS.
REFUND_ERRORS = {
    404: "No such payment for this key (PAYMENT_NOT_FOUND)",
    "404-refund": "No such refund for this key (REFUND_NOT_FOUND)",
    422: "The payment is not captured (PAYMENT_NOT_REFUNDABLE), the refund is more than remains refundable "
    "(REFUND_EXCEEDS_AVAILABLE), or the Idempotency-Key was used with another request (IDEMPOTENCY_KEY_REUSED)",
}


def errors(*codes: int | str) -> dict:
    """The error responses of an operation on refunds (see pgi.api.openapi.error_responses)."""
    return error_responses(*codes, descriptions=REFUND_ERRORS)


LOCATION_HEADER = OpenApiParameter(
    "Location",
    type={"type": "string", "format": "uri"},
    location=OpenApiParameter.HEADER,
    response=[202],
    description="The new refund's URL (`GET` it for the refund as it is now).",
)

EXAMPLE_REFUND = {
    "id": "ref_06f3k2a9c1m4q9r7t5w0x2y4z6",
    "paymentId": "pay_06f3k1v2d8m4q9r7t5w0x2y4z6",
    "amount": 20.00,
    "currency": "USD",
    "status": "Pending",
    "reason": "Returned item",
    "metadata": {},
    "gateway": "simulator",
    "gatewayReference": None,
    "failureCode": None,
    "failureMessage": None,
    "timestamp": "2024-05-18T09:10:11Z",
    "settlementId": None,
    "createdAt": "2024-05-18T09:10:11Z",
    "updatedAt": "2024-05-18T09:10:11Z",
}
REFUND_ACCEPTED_EXAMPLE = OpenApiExample(
    "A refund accepted", value=EXAMPLE_REFUND, response_only=True, status_codes=["202"]
)
REFUND_EXAMPLE = OpenApiExample(
    "A completed refund",
    value={
        **EXAMPLE_REFUND,
        "status": "Completed",
        "gatewayReference": "sim_re_4Kd8PzQ2",
        "timestamp": "2024-05-18T09:10:13Z",
        "updatedAt": "2024-05-18T09:10:13Z",
    },
    response_only=True,
    status_codes=["200"],
)
REFUND_NOT_FOUND_EXAMPLE = error_example("No such refund", 404, "REFUND_NOT_FOUND", "No refund with this id.")
NOT_REFUNDABLE_EXAMPLE = error_example(
    "A payment not captured",
    422,
    "PAYMENT_NOT_REFUNDABLE",
    "A Failed payment cannot be refunded; only a captured one (Completed or PartiallyRefunded) can.",
)
EXCEEDS_AVAILABLE_EXAMPLE = error_example(
    "More than remains refundable",
    422,
    "REFUND_EXCEEDS_AVAILABLE",
    "The refund is larger than what remains refundable.",
    [{"field": "amount", "message": "At most 30.00 USD."}],
)
KEY_REUSED_EXAMPLE = error_example(
    "An Idempotency-Key used with another request",
    422,
    "IDEMPOTENCY_KEY_REUSED",
    "This Idempotency-Key was used with another request.",
    [{"field": "Idempotency-Key", "message": "Use a new key for a new request."}],
)
REQUEST_EXAMPLE = OpenApiExample(
    "Refund part of a payment", value={"amount": 20.00, "reason": "Returned item"}, request_only=True
)
REQUEST_ALL_EXAMPLE = OpenApiExample("Refund all that remains", value={}, request_only=True)


# RefundCreateRequest in the document: COMPONENT_SPLIT_REQUEST appends "Request" to the name.
@extend_schema_serializer(component_name="RefundCreate")
class RefundInputSerializer(StrictInputSerializer):
    read_only_names = ("id", "paymentId", "currency", "status", "gateway", "gatewayReference", "timestamp")

    amount = AmountField(
        required=False,
        help_text="Up to what remains refundable (captured, minus what is refunded or being refunded), with the "
        "payment currency's digits. Omitted: all that remains.",
    )
    reason = StrictCharField(max_length=255, required=False, allow_blank=True, default="")
    metadata = MetadataField(required=False, default=dict)


@extend_schema_serializer(component_name="Refund")
class RefundOutputSerializer(serializers.ModelSerializer):
    paymentId = serializers.CharField(source="payment_id")
    amount = CurrencyAmountField()
    reason = BlankAsNullCharField()
    metadata = serializers.DictField(child=serializers.CharField())
    gateway = serializers.CharField(help_text="The payment's gateway, which the refund is sent to.")
    gatewayReference = BlankAsNullCharField(source="gateway_reference", help_text="The gateway's id of the refund.")
    failureCode = BlankAsNullCharField(source="failure_code")
    failureMessage = BlankAsNullCharField(source="failure_message")
    timestamp = serializers.DateTimeField(source="status_changed_at", help_text="When the refund reached its status.")
    settlementId = serializers.CharField(
        source="settlement_id",
        read_only=True,
        allow_null=True,
        default=None,
        help_text="The settlement batch (`GET /v1/settlements/{id}`) that deducted it; null until settled.",
    )
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")

    class Meta:
        model = Refund
        fields = [
            "id",
            "paymentId",
            "amount",
            "currency",
            "status",
            "reason",
            "metadata",
            "gateway",
            "gatewayReference",
            "failureCode",
            "failureMessage",
            "timestamp",
            "settlementId",
            "createdAt",
            "updatedAt",
        ]
        read_only_fields = fields


class RefundPageSerializer(PageSerializer):
    results = RefundOutputSerializer(many=True)


def _refund_meaning(request) -> dict | None:
    """What a refund body means, for Idempotency-Key: defaults applied. None when it fails
    validation: it is then compared as sent. An amount given is another request than none, even
    when it is all that remains."""
    serializer = input_once(request, RefundInputSerializer)
    return None if serializer.errors else dict(serializer.validated_data)


def _accepted(refund: Refund) -> Response:
    return Response(RefundOutputSerializer(refund).data, status=status.HTTP_202_ACCEPTED)


def _accepted_answer(refund: Refund) -> tuple[Response, bool]:
    """POST's answer built from the refund as it is now; final once the refund is."""
    return _accepted(refund), refund.is_final


def _page(view: ApiView, request, queryset) -> Response:
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(RefundOutputSerializer(page, many=True).data)


class PaymentRefundsApi(ApiView):
    """`/v1/payments/{id}/refunds`: POST refunds the payment, GET lists its refunds. An id no
    payment can have is 404 before anything runs or is stored (an Idempotency-Key's claim included)."""

    key_scope = "refunds"
    pagination_class = CreatedCursorPagination

    def known_query_params(self, request):
        return None if request.method == "GET" else frozenset()  # the list's RefundPageFilter checks its own

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if hasattr(self, request.method.lower()):  # another method is 405 first, whatever the id
            payment_id_check(payment_id=kwargs["payment_id"])

    @extend_schema(
        tags=[TAG],
        operation_id="refunds_create",
        summary="Refund a payment",
        description="Gives back all or part of a captured payment (`Completed` or `PartiallyRefunded`); a "
        "payment may have many refunds, up to its captured amount. 202 with the refund, `Pending`: PGI sends it "
        "to the payment's gateway within seconds (or its batch job does), and applies the gateway's answer or "
        "notification. Follow it with `GET /v1/refunds/{id}`; the payment becomes `PartiallyRefunded` or "
        "`Refunded`, with `refundedAmount`, once the refund is `Completed`.",
        parameters=[*POSTED_PARAMETERS, LOCATION_HEADER],
        request=RefundInputSerializer,
        examples=[
            REQUEST_EXAMPLE,
            REQUEST_ALL_EXAMPLE,
            REFUND_ACCEPTED_EXAMPLE,
            VALIDATION_ERROR_EXAMPLE,
            PAYMENT_NOT_FOUND_EXAMPLE,
            NOT_REFUNDABLE_EXAMPLE,
            EXCEEDS_AVAILABLE_EXAMPLE,
            KEY_REUSED_EXAMPLE,
        ],
        responses={202: RefundOutputSerializer, **errors(*POSTED, *KEYED, 404, 422)},
    )
    def post(self, request, payment_id: str):
        response = self._create(request, payment_id)
        return with_location(
            request, response, status_code=status.HTTP_202_ACCEPTED, url_name="refund-detail", kwarg="refund_id"
        )

    @idempotent(meaning=_refund_meaning, answer_linked=_accepted_answer)
    def _create(self, request, payment_id: str):
        payment = payment_get(principal=request.user, payment_id=payment_id)
        serializer = input_once(request, RefundInputSerializer)
        if serializer.errors:
            raise serializers.ValidationError(serializer.errors)
        data = serializer.validated_data
        refund = refund_create(
            payment_id=payment.id,
            amount=data.get("amount"),
            reason=data["reason"],
            metadata=data["metadata"],
            principal=request.user,
            link=idempotency_link(request),
        )
        return _accepted(refund)

    @extend_schema(
        tags=[TAG],
        operation_id="refunds_list_for_payment",
        summary="List a payment's refunds",
        description="Newest first, with cursor pagination: follow `next` until it is null.",
        parameters=[*PAGE_PARAMETERS, *RESPONSE_HEADERS],
        examples=[PAYMENT_NOT_FOUND_EXAMPLE],
        responses={200: RefundPageSerializer, **errors("400-query", *KEYED, 404)},
    )
    def get(self, request, payment_id: str):
        payment = payment_get(principal=request.user, payment_id=payment_id)
        queryset = refund_list(principal=request.user, payment=payment)
        return _page(self, request, RefundPageFilter.filtered(request.query_params, queryset=queryset, request=request))


def _help(filter_name: str) -> str:
    return RefundFilter.base_filters[filter_name].extra["help_text"]


class RefundCollectionApi(ApiView):
    key_scope = "refunds"

    pagination_class = CreatedCursorPagination

    def known_query_params(self, request):
        return None  # RefundFilter checks its own

    @extend_schema(
        tags=[TAG],
        operation_id="refunds_list",
        summary="List refunds",
        description="The refunds of the key's merchant (of every merchant for a platform key), newest first, "
        "with cursor pagination: follow `next` until it is null.",
        parameters=[
            OpenApiParameter(
                "status",
                {"type": "array", "items": {"$ref": "#/components/schemas/RefundStatus"}},
                explode=True,
                description=_help("status"),
            ),
            OpenApiParameter(
                "paymentId",
                {"type": "string", "pattern": "^pay_[0-9a-hjkmnp-tv-z]{26}$"},
                description=_help("paymentId"),
            ),
            OpenApiParameter("currency", str, pattern="^[A-Z]{3}$", description=_help("currency")),
            OpenApiParameter("createdFrom", OpenApiTypes.DATETIME, description=_help("createdFrom")),
            OpenApiParameter("createdTo", OpenApiTypes.DATETIME, description=_help("createdTo")),
            OpenApiParameter(
                "merchant", {"type": "string", "minLength": 1, "maxLength": 64}, description=_help("merchant")
            ),
            *PAGE_PARAMETERS,
            *RESPONSE_HEADERS,
        ],
        responses={200: RefundPageSerializer, **errors("400-query", *KEYED)},
    )
    def get(self, request):
        queryset = refund_list(principal=request.user)
        return _page(self, request, RefundFilter.filtered(request.query_params, queryset=queryset, request=request))


class RefundDetailApi(ApiView):
    key_scope = "refunds"

    @extend_schema(
        tags=[TAG],
        operation_id="refunds_retrieve",
        summary="Get a refund by ID",
        parameters=RESPONSE_HEADERS,
        examples=[REFUND_EXAMPLE, REFUND_NOT_FOUND_EXAMPLE],
        responses={200: RefundOutputSerializer, **errors("400-query", *KEYED, "404-refund")},
    )
    def get(self, request, refund_id: str):
        return Response(RefundOutputSerializer(refund_get(principal=request.user, refund_id=refund_id)).data)
