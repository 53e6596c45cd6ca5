"""The settlements API: a merchant's settlement batches (totals, payout status) and their lines.
Read-only, built as the payments and refunds lists are (strict query parameters, cursor pages, one
error format); a merchant key sees its own batches only, another merchant's id is 404."""

import re

from django.db.models import Value
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import NotFound as DrfNotFound
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from pgi.api.openapi import (
    KEYED,
    PAGE_PARAMETERS,
    RESPONSE_HEADERS,
    error_example,
    error_responses,
)
from pgi.api.pagination import BASE64_TEXT, LIMIT_TEXT, CreatedCursorPagination
from pgi.api.serializers import (
    BlankAsNullCharField,
    CurrencyAmountField,
    PageSerializer,
)
from pgi.api.views import ApiView

from .filters import SettlementFilter, SettlementLinePageFilter
from .models import BatchStatus, LineKind, SettlementBatch, SettlementLine
from .selectors import settlement_get, settlement_lines, settlement_list

TAG = "Settlements"

SETTLEMENT_ERRORS = {404: "No such settlement for this key (SETTLEMENT_NOT_FOUND)"}


def errors(*codes: int | str) -> dict:
    return error_responses(*codes, descriptions=SETTLEMENT_ERRORS)


@extend_schema_field(
    {
        "type": "number",
        "format": "decimal",
        "example": -12.50,
        "description": "Exact decimal amount with the currency's digits; may be zero or negative.",
    }
)
class SignedAmountField(CurrencyAmountField):
    """An amount that may be negative (a net, a carried net), written with the currency's digits."""


EXAMPLE_SETTLEMENT = {
    "id": "stl_06f3k3b2c1m4q9r7t5w0x2y4z6",
    "merchant": "merchant456",
    "currency": "EUR",
    "cutoff": "2024-05-18T00:00:00Z",
    "payoutStatus": "pending",
    "payoutStatusReason": None,
    "payoutDate": "2024-05-20",
    "grossAmount": 1250.00,
    "refundAmount": 20.00,
    "feeAmount": 17.75,
    "carriedAmount": 0.00,
    "netAmount": 1212.25,
    "paymentCount": 10,
    "refundCount": 1,
    "feeBasisPoints": 140,
    "feeFixed": 0.00,
    "feeMinimum": None,
    "createdAt": "2024-05-18T00:00:04Z",
    "updatedAt": "2024-05-18T00:00:04Z",
}
SETTLEMENT_EXAMPLE = OpenApiExample("A settlement", value=EXAMPLE_SETTLEMENT, response_only=True, status_codes=["200"])
NOT_FOUND_EXAMPLE = error_example("No such settlement", 404, "SETTLEMENT_NOT_FOUND", "No settlement with this id.")


@extend_schema_serializer(component_name="Settlement")
class SettlementOutputSerializer(serializers.ModelSerializer):
    merchant = serializers.CharField(source="merchant.code", help_text="The merchant's code.")
    cutoff = serializers.DateTimeField(help_text="Captures and refunds up to this moment (inclusive) are in it.")
    payoutStatus = serializers.ChoiceField(
        source="status",
        choices=BatchStatus.choices,
        help_text="`pending` until the bank pays it out (`paid_out`); `held` by the bank (see the reason); "
        "`carried_forward` when the net is not above zero: it is then a line of the next settlement.",
    )
    payoutStatusReason = BlankAsNullCharField(source="status_reason")
    payoutDate = serializers.DateField(source="payout_date", help_text="The requested execution date of the transfer.")
    grossAmount = CurrencyAmountField(source="gross_amount", help_text="The captured payments.")
    refundAmount = CurrencyAmountField(source="refund_amount", help_text="The completed refunds.")
    feeAmount = CurrencyAmountField(source="fee_amount")
    carriedAmount = SignedAmountField(
        source="carried_amount", help_text="Earlier settlements' net carried into this one (zero or negative)."
    )
    netAmount = SignedAmountField(
        source="net_amount", help_text="grossAmount - refundAmount - feeAmount + carriedAmount: what is paid out."
    )
    paymentCount = serializers.IntegerField(source="payment_count")
    refundCount = serializers.IntegerField(source="refund_count")
    feeBasisPoints = serializers.IntegerField(source="fee_basis_points", help_text="The fee plan applied: 140 is 1.40 %.")
    feeFixed = CurrencyAmountField(source="fee_fixed", help_text="Added to each payment's percentage.")
    feeMinimum = CurrencyAmountField(source="fee_minimum", allow_null=True, help_text="The least fee of a payment.")
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")

    class Meta:
        model = SettlementBatch
        fields = [
            "id", "merchant", "currency", "cutoff", "payoutStatus", "payoutStatusReason", "payoutDate",
            "grossAmount", "refundAmount", "feeAmount", "carriedAmount", "netAmount", "paymentCount",
            "refundCount", "feeBasisPoints", "feeFixed", "feeMinimum", "createdAt", "updatedAt",
        ]
        read_only_fields = fields


class SettlementPageSerializer(PageSerializer):
    results = SettlementOutputSerializer(many=True)


@extend_schema_serializer(component_name="SettlementLine")
class SettlementLineOutputSerializer(serializers.ModelSerializer):
    kind = serializers.ChoiceField(
        choices=LineKind.choices, help_text="A captured `payment`, a completed `refund`, or a `carry` of an earlier net."
    )
    paymentId = serializers.CharField(source="payment_id", allow_null=True, help_text="The payment (also of a refund).")
    refundId = serializers.CharField(source="refund_id", allow_null=True)
    carriedSettlementId = serializers.CharField(source="carried_batch_id", allow_null=True)
    amount = SignedAmountField(help_text="The captured amount, the refund's amount, or the carried net.")
    fee = CurrencyAmountField()
    net = SignedAmountField(help_text="What the line adds to the settlement's net (negative for a refund).")
    occurredAt = serializers.DateTimeField(source="occurred_at", help_text="Captured or refunded at.")

    class Meta:
        model = SettlementLine
        fields = ["kind", "paymentId", "refundId", "carriedSettlementId", "amount", "fee", "net", "occurredAt"]
        read_only_fields = fields


class SettlementLinePageSerializer(PageSerializer):
    results = SettlementLineOutputSerializer(many=True)


class LineCursorPagination(CursorPagination):
    """A batch's lines in the order they were written: the cursor is a line id (a million lines in
    one batch share one creation time, which a time cursor would page by offset)."""

    ordering = ("id",)
    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000
    invalid_cursor_message = "The cursor is invalid or has been tampered with."

    def decode_cursor(self, request):
        encoded = request.query_params.get(self.cursor_query_param)
        try:
            cursor = super().decode_cursor(request)
        except DrfNotFound as exc:
            raise ValidationError({"cursor": [self.invalid_cursor_message]}) from exc
        # As the settlements list's cursor (pgi.api.pagination): DRF's base64 decoding skips what is
        # not base64, so "%%%" would decode to nothing and read as the first page.
        if cursor is not None and (
            not BASE64_TEXT.fullmatch(encoded)
            or (cursor.position is not None and not re.fullmatch(r"[0-9]{1,19}", cursor.position))
        ):
            raise ValidationError({"cursor": [self.invalid_cursor_message]})
        return cursor

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is not None and (not LIMIT_TEXT.fullmatch(raw) or not 1 <= int(raw) <= self.max_page_size):
            raise ValidationError({"limit": [f"Must be a whole number from 1 to {self.max_page_size}."]})
        return super().get_page_size(request)


def _help(name: str) -> str:
    return SettlementFilter.base_filters[name].extra["help_text"]


class SettlementCollectionApi(ApiView):
    key_scope = "settlements"

    pagination_class = CreatedCursorPagination

    def known_query_params(self, request):
        return None  # SettlementFilter checks its own

    @extend_schema(
        tags=[TAG],
        operation_id="settlements_list",
        summary="List settlements",
        description="The settlement batches of the key's merchant (of every merchant for a platform key), one "
        "per merchant, currency and cut-off, newest first, with cursor pagination: follow `next` until it is null.",
        parameters=[
            OpenApiParameter(
                "payoutStatus",
                {"type": "array", "items": {"$ref": "#/components/schemas/SettlementPayoutStatus"}},
                explode=True,
                description=_help("payoutStatus"),
            ),
            OpenApiParameter("currency", str, pattern="^[A-Z]{3}$", description=_help("currency")),
            OpenApiParameter("cutoffFrom", OpenApiTypes.DATETIME, description=_help("cutoffFrom")),
            OpenApiParameter("cutoffTo", OpenApiTypes.DATETIME, description=_help("cutoffTo")),
            OpenApiParameter(
                "merchant", {"type": "string", "minLength": 1, "maxLength": 64}, description=_help("merchant")
            ),
            *PAGE_PARAMETERS,
            *RESPONSE_HEADERS,
        ],
        responses={200: SettlementPageSerializer, **errors("400-query", *KEYED)},
    )
    def get(self, request):
        queryset = SettlementFilter.filtered(request.query_params, queryset=settlement_list(principal=request.user), request=request)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(SettlementOutputSerializer(page, many=True).data)


class SettlementDetailApi(ApiView):
    key_scope = "settlements"

    @extend_schema(
        tags=[TAG],
        operation_id="settlements_retrieve",
        summary="Get a settlement by ID",
        description="Its totals and payout status; its lines are `GET /v1/settlements/{id}/lines`.",
        parameters=RESPONSE_HEADERS,
        examples=[SETTLEMENT_EXAMPLE, NOT_FOUND_EXAMPLE],
        responses={200: SettlementOutputSerializer, **errors("400-query", *KEYED, 404)},
    )
    def get(self, request, settlement_id: str):
        return Response(SettlementOutputSerializer(settlement_get(principal=request.user, settlement_id=settlement_id)).data)


class SettlementLinesApi(ApiView):
    key_scope = "settlements"

    pagination_class = LineCursorPagination

    def known_query_params(self, request):
        return None  # SettlementLinePageFilter checks its own

    @extend_schema(
        tags=[TAG],
        operation_id="settlements_lines",
        summary="List a settlement's lines",
        description="Every payment, refund and carried net in the settlement, in the order written, with cursor "
        "pagination: follow `next` until it is null. Their sums are the settlement's totals.",
        parameters=[
            OpenApiParameter("cursor", str, description="Opaque position from `next` or `previous`."),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": LineCursorPagination.max_page_size},
                description="Page size, 1 to 1000 (default 100).",
            ),
            *RESPONSE_HEADERS,
        ],
        examples=[NOT_FOUND_EXAMPLE],
        responses={200: SettlementLinePageSerializer, **errors("400-query", *KEYED, 404)},
    )
    def get(self, request, settlement_id: str):
        batch = settlement_get(principal=request.user, settlement_id=settlement_id)
        lines = settlement_lines(batch=batch).annotate(currency=Value(batch.currency))
        queryset = SettlementLinePageFilter.filtered(request.query_params, queryset=lines, request=request)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(SettlementLineOutputSerializer(page, many=True).data)
