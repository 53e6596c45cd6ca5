from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.response import Response

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
    AccountField,
    AccountOutputField,
    AmountField,
    BlankAsNullCharField,
    CurrencyAmountField,
    CurrencyField,
    MetadataField,
    PageSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictInputSerializer,
    UtcDateTimeField,
    input_once,
)
from pgi.api.views import ApiView, with_location

from .filters import PaymentFilter
from .models import Payment, PaymentStatus
from .representation import payment_representation
from .selectors import payment_get, payment_id_check, payment_list, payment_page
from .services import payment_cancel, payment_capture, payment_process, payment_validate

TAG = "Payments"

# This app's own error descriptions; the common ones are pgi.api.openapi.COMMON_ERRORS.
PAYMENT_ERRORS = {
    403: "The key may not act for this merchant (MERCHANT_NOT_ALLOWED)",
    404: "No such payment for this key (PAYMENT_NOT_FOUND)",
    "409-operation": "A request with the same Idempotency-Key is in progress (IDEMPOTENCY_IN_PROGRESS; see "
    "Retry-After), "
    "or the payment's status does not allow it (PAYMENT_NOT_CAPTURABLE, PAYMENT_NOT_CANCELLABLE, "
    "AUTHORIZATION_EXPIRED, OPERATION_IN_PROGRESS)",
    422: "A business rule refused the payment (CURRENCY_NOT_ENABLED, AMOUNT_OVER_LIMIT, UNKNOWN_MERCHANT, "
    "MERCHANT_INACTIVE, IDEMPOTENCY_KEY_REUSED)",
    "422-capture": "More than the authorized amount (CAPTURE_EXCEEDS_AUTHORIZATION), the gateway refused "
    "the capture (CAPTURE_DECLINED; the payment is still Authorized), or the Idempotency-Key was used "
    "with another request (IDEMPOTENCY_KEY_REUSED)",
    "422-cancel": "The gateway refused the cancel (CANCEL_DECLINED; the payment is still Authorized), or "
    "the Idempotency-Key was used with another request (IDEMPOTENCY_KEY_REUSED)",
    503: "The payment's gateway cannot be reached; nothing changed (GATEWAY_UNAVAILABLE)",
}


def errors(*codes: int | str) -> dict:
    """The error responses of an operation on payments (see pgi.api.openapi.error_responses)."""
    return error_responses(*codes, descriptions=PAYMENT_ERRORS)


LOCATION_HEADER = OpenApiParameter(
    "Location",
    type={"type": "string", "format": "uri"},
    location=OpenApiParameter.HEADER,
    response=[201],
    description="The new payment's URL (`GET` it for the payment as it is now).",
)

# Response examples, the same on every operation that answers with a Payment or an Error.
EXAMPLE_PAYMENT = {
    "id": "pay_06f3k1v2d8m4q9r7t5w0x2y4z6",
    "amount": 50.00,
    "currency": "USD",
    "fromAccount": "account123",
    "toMerchant": "merchant456",
    "status": "Completed",
    "timestamp": "2024-05-17T12:34:56Z",
    "reference": "order-1001",
    "description": None,
    "metadata": {},
    "gateway": "simulator",
    "gatewayReference": "sim_ch_7Hq2LmX9",
    "failureCode": None,
    "failureMessage": None,
    "refundedAmount": 0.00,
    "capture": True,
    "capturedAmount": 50.00,
    "authorizationExpiresAt": None,
    "pendingOperation": None,
    "settlementId": None,
    "createdAt": "2024-05-17T12:34:55Z",
    "updatedAt": "2024-05-17T12:34:56Z",
}


PAYMENT_CREATED_EXAMPLE = OpenApiExample(
    "A completed payment", value=EXAMPLE_PAYMENT, response_only=True, status_codes=["201"]
)
PAYMENT_EXAMPLE = OpenApiExample("A payment", value=EXAMPLE_PAYMENT, response_only=True, status_codes=["200"])
NOT_FOUND_EXAMPLE = error_example("No such payment", 404, "PAYMENT_NOT_FOUND", "No payment with this id.")
CURRENCY_NOT_ENABLED_EXAMPLE = error_example(
    "A currency the merchant does not accept",
    422,
    "CURRENCY_NOT_ENABLED",
    "Merchant merchant456 does not accept JPY.",
    [{"field": "currency", "message": "Enabled: EUR, GBP, USD."}],
)
CAPTURE_EXCEEDS_EXAMPLE = error_example(
    "More than was authorized",
    422,
    "CAPTURE_EXCEEDS_AUTHORIZATION",
    "The capture is larger than the authorized amount.",
    [{"field": "amount", "message": "At most 50.00 USD."}],
)


# PaymentCreateRequest in the document: COMPONENT_SPLIT_REQUEST appends "Request" to the name.
@extend_schema_serializer(component_name="PaymentCreate")
class PaymentInputSerializer(StrictInputSerializer):
    read_only_names = (
        "id",
        "status",
        "timestamp",
        "gateway",
        "gatewayReference",
        "refundedAmount",
        "capturedAmount",
        "authorizationExpiresAt",
        "pendingOperation",
    )

    amount = AmountField()
    currency = CurrencyField()
    fromAccount = AccountField(source="from_account")
    toMerchant = StrictCharField(
        source="to_merchant",
        max_length=64,
        required=False,
        help_text="Merchant code. Optional for a merchant key (its own); required for a platform key.",
    )
    reference = StrictCharField(max_length=64, required=False, allow_blank=True, default="")
    description = StrictCharField(max_length=255, required=False, allow_blank=True, default="")
    metadata = MetadataField(required=False, default=dict)
    capture = StrictBooleanField(
        required=False,
        default=True,
        help_text="false: authorize only; the payment stops at `Authorized` until "
        "`POST /v1/payments/{id}/capture` or `/cancel` (or until the authorization expires).",
    )

    @staticmethod
    def draft_fields(data: dict) -> dict:
        """payment_validate's keyword arguments from validated data: the REST body's, or a Kafka
        payment request's (payment_requests checks its messages with a subclass of this one)."""
        return {
            "amount": data["amount"],
            "currency": data["currency"],
            "from_account": data["from_account"],
            "to_merchant": data.get("to_merchant"),
            "reference": data["reference"],
            "description": data["description"],
            "metadata": data["metadata"],
            "capture": data["capture"],
        }


@extend_schema_serializer(component_name="Payment")  # the API specification's name for it
class PaymentOutputSerializer(serializers.ModelSerializer):
    amount = CurrencyAmountField()
    fromAccount = AccountOutputField(
        source="from_account",
        help_text="Whole in the answer to the payment's creation and to its own GET; masked to its last four "
        "characters (`****t123`) in lists and in events.",
    )
    toMerchant = serializers.CharField(source="merchant.code")
    timestamp = UtcDateTimeField(source="status_changed_at", help_text="When the payment reached its status.")
    reference = BlankAsNullCharField()
    description = BlankAsNullCharField()
    metadata = serializers.DictField(child=serializers.CharField())
    gateway = BlankAsNullCharField()
    gatewayReference = BlankAsNullCharField(source="gateway_reference")
    failureCode = BlankAsNullCharField(source="failure_code")
    failureMessage = BlankAsNullCharField(source="failure_message")
    refundedAmount = CurrencyAmountField(source="refunded_amount")
    capture = serializers.BooleanField(help_text="Whether the payment was captured on authorization.")
    capturedAmount = CurrencyAmountField(
        source="captured_amount", allow_null=True, help_text="What was captured; null until captured."
    )
    authorizationExpiresAt = UtcDateTimeField(
        source="authorization_expires_at",
        allow_null=True,
        help_text="For a payment sent with `capture: false`: when its authorization lapses if not captured; "
        "kept after a capture or cancel. Null for a payment charged at once.",
    )
    pendingOperation = BlankAsNullCharField(
        source="pending_operation",
        help_text="`capture` or `void` while one is sent and the gateway has not confirmed it; else null.",
    )

    settlementId = serializers.CharField(
        source="settlement_id",
        read_only=True,
        allow_null=True,
        default=None,
        help_text="The settlement batch (`GET /v1/settlements/{id}`) that settled it; null until settled.",
    )
    createdAt = UtcDateTimeField(source="created_at")
    updatedAt = UtcDateTimeField(source="updated_at")

    # The fields above are the schema; the answer is written by payments.representation, field for
    # field as they would write it (tests/payments/test_payment_representation.py), without building them.
    def to_representation(self, instance):
        return payment_representation(instance, mask_accounts=bool(self.context.get("mask_accounts")))

    class Meta:
        model = Payment
        fields = [
            "id",
            "amount",
            "currency",
            "fromAccount",
            "toMerchant",
            "status",
            "timestamp",
            "reference",
            "description",
            "metadata",
            "gateway",
            "gatewayReference",
            "failureCode",
            "failureMessage",
            "refundedAmount",
            "capture",
            "capturedAmount",
            "authorizationExpiresAt",
            "pendingOperation",
            "settlementId",
            "createdAt",
            "updatedAt",
        ]
        read_only_fields = fields


class PaymentPageSerializer(PageSerializer):
    results = PaymentOutputSerializer(many=True)


def _payment_input(request) -> PaymentInputSerializer:
    return input_once(request, PaymentInputSerializer)


def _payment_meaning(request) -> dict | None:
    """What a payment body means, for Idempotency-Key: defaults applied, the account normalized, a
    merchant key's own merchant implied. None when it fails validation: it is compared as sent."""
    serializer = _payment_input(request)
    if serializer.errors:
        return None
    meaning = dict(serializer.validated_data)
    if not request.user.is_platform and meaning.get("to_merchant") == request.user.merchant.code:
        del meaning["to_merchant"]
    return meaning


def _with_location(request, response):
    """A 201 names the new payment's URL, also when it is a replay."""
    return with_location(
        request, response, status_code=status.HTTP_201_CREATED, url_name="payment-detail", kwarg="payment_id"
    )


def _created_answer(payment: Payment) -> tuple[Response, bool]:
    """POST's answer built from the payment as it is now; final once its outcome is known."""
    return Response(PaymentOutputSerializer(payment).data, status=status.HTTP_201_CREATED), not payment.outcome_unknown


def _validated_draft(request):
    serializer = _payment_input(request)
    if serializer.errors:
        raise serializers.ValidationError(serializer.errors)
    return payment_validate(principal=request.user, **PaymentInputSerializer.draft_fields(serializer.validated_data))


REQUEST_EXAMPLE = OpenApiExample(
    "Example payment from the API specification",
    value={"amount": 50.00, "currency": "USD", "fromAccount": "account123", "toMerchant": "merchant456"},
    request_only=True,
)


def _help(filter_name: str) -> str:
    return PaymentFilter.base_filters[filter_name].extra["help_text"]


class PaymentPagination(CreatedCursorPagination):
    """With `merchant` set (the view does, for a merchant key's unfiltered list), a page is read by
    payments.selectors.payment_page, its query compiled once per shape; otherwise as DRF reads it."""

    merchant = None

    def page_rows(self, queryset, *, offset, reverse, position):
        if self.merchant is None:
            return super().page_rows(queryset, offset=offset, reverse=reverse, position=position)
        return payment_page(
            merchant=self.merchant,
            ordering=self.page_order(reverse),
            lookup=self.page_position_lookup(position),
            position=position,
            offset=offset,
            count=self.page_size + 1,
        )


class PaymentCollectionApi(ApiView):
    """`/v1/payments`: POST processes a payment, GET lists them. The path is shared, so one view
    holds both operations; each has its own serializers and schema."""

    key_scope = "payments"
    pagination_class = PaymentPagination
    filterset_class = PaymentFilter

    def known_query_params(self, request):
        return None if request.method == "GET" else frozenset()  # the list's PaymentFilter checks its own

    @extend_schema(
        tags=[TAG],
        operation_id="payments_create",
        summary="Process a payment",
        description="Validates, records and sends the payment to a gateway. A declined payment is still "
        "created: 201 with status `Failed` and a `failureCode`.",
        parameters=[*POSTED_PARAMETERS, LOCATION_HEADER],
        request=PaymentInputSerializer,
        examples=[REQUEST_EXAMPLE, PAYMENT_CREATED_EXAMPLE, VALIDATION_ERROR_EXAMPLE, CURRENCY_NOT_ENABLED_EXAMPLE],
        responses={201: PaymentOutputSerializer, **errors(*POSTED, *KEYED, 403, 422)},
    )
    def post(self, request):
        return _with_location(request, self._create(request))

    @idempotent(meaning=_payment_meaning, answer_linked=_created_answer)
    def _create(self, request):
        draft = _validated_draft(request)
        payment = payment_process(draft=draft, principal=request.user, link=idempotency_link(request))
        return Response(PaymentOutputSerializer(payment).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        tags=[TAG],
        operation_id="payments_list",
        summary="List payments",
        description="Newest first, with cursor pagination: follow `next` until it is null.",
        parameters=[
            # An APIView gets no filter parameters from drf-spectacular: they are listed here.
            # The Payment's own status enum, by reference: a generated client gets one type for both.
            OpenApiParameter(
                "status",
                {"type": "array", "items": {"$ref": "#/components/schemas/PaymentStatus"}},
                explode=True,
                description=_help("status"),
            ),
            OpenApiParameter("createdFrom", OpenApiTypes.DATETIME, description=_help("createdFrom")),
            OpenApiParameter("createdTo", OpenApiTypes.DATETIME, description=_help("createdTo")),
            # An empty filter is refused, not taken as no filter.
            OpenApiParameter("reference", {"type": "string", "minLength": 1}, description=_help("reference")),
            OpenApiParameter("currency", str, pattern="^[A-Z]{3}$", description=_help("currency")),
            OpenApiParameter(
                "fromAccount", {"type": "string", "minLength": 1, "maxLength": 64}, description=_help("fromAccount")
            ),
            OpenApiParameter(
                "merchant", {"type": "string", "minLength": 1, "maxLength": 64}, description=_help("merchant")
            ),
            *PAGE_PARAMETERS,
            *RESPONSE_HEADERS,
        ],
        responses={200: PaymentPageSerializer, **errors("400-query", *KEYED)},
    )
    def get(self, request):
        whole = payment_list(principal=request.user)
        queryset = PaymentFilter.filtered(request.query_params, queryset=whole, request=request)
        paginator = self.pagination_class()
        if queryset is whole and not request.user.is_platform:
            paginator.merchant = request.user.merchant  # the merchant's whole list: a compiled page
        page = paginator.paginate_queryset(queryset, request, view=self)
        page_data = PaymentOutputSerializer(page, many=True, context={"mask_accounts": True}).data
        return paginator.get_paginated_response(page_data)


class PaymentDetailApi(ApiView):
    key_scope = "payments"

    @extend_schema(
        tags=[TAG],
        operation_id="payments_retrieve",
        summary="Get a payment by ID",
        parameters=RESPONSE_HEADERS,
        examples=[PAYMENT_EXAMPLE, NOT_FOUND_EXAMPLE],
        responses={200: PaymentOutputSerializer, **errors("400-query", *KEYED, 404)},
    )
    def get(self, request, payment_id: str):
        payment = payment_get(principal=request.user, payment_id=payment_id)
        return Response(PaymentOutputSerializer(payment).data)


class PaymentStatusApi(ApiView):
    key_scope = "payments"

    # Nested serializers all named OutputSerializer would share one schema component: name each.
    @extend_schema_serializer(component_name="PaymentStatusResult")
    class OutputSerializer(serializers.Serializer):
        id = serializers.CharField()
        status = serializers.ChoiceField(choices=PaymentStatus.choices)
        timestamp = serializers.DateTimeField(source="status_changed_at")
        failureCode = BlankAsNullCharField(source="failure_code")

    @extend_schema(
        tags=[TAG],
        operation_id="payments_status",
        summary="Get a payment's status",
        description="The status alone: cheap enough to poll.",
        parameters=RESPONSE_HEADERS,
        responses={200: OutputSerializer, **errors("400-query", *KEYED, 404)},
    )
    def get(self, request, payment_id: str):
        payment = payment_get(principal=request.user, payment_id=payment_id)
        return Response(self.OutputSerializer(payment).data)


class PaymentValidateApi(ApiView):
    key_scope = "payments"

    @extend_schema_serializer(component_name="PaymentValidation")
    class OutputSerializer(serializers.Serializer):
        valid = serializers.BooleanField()
        amount = AmountField(help_text="The amount as it would be recorded, with the currency's digits.")
        currency = serializers.CharField()
        fromAccount = serializers.CharField(source="from_account", help_text="Normalized (IBANs compact).")
        toMerchant = serializers.CharField(source="merchant.code")

    @extend_schema(
        tags=[TAG],
        operation_id="payments_validate",
        summary="Validate payment details",
        description="Runs every check that `POST /v1/payments` runs and creates nothing. 200 when the "
        "payment would be accepted; otherwise the same error that POST would return.",
        parameters=POSTED_PARAMETERS,
        request=PaymentInputSerializer,
        examples=[REQUEST_EXAMPLE, VALIDATION_ERROR_EXAMPLE, CURRENCY_NOT_ENABLED_EXAMPLE],
        responses={200: OutputSerializer, **errors(*POSTED, *KEYED, 403, 422)},
    )
    @idempotent(meaning=_payment_meaning)
    def post(self, request):
        draft = _validated_draft(request)
        draft_view = {
            "valid": True,
            "amount": draft.amount,
            "currency": draft.currency,
            "from_account": draft.from_account,
            "merchant": draft.merchant,
        }
        return Response(self.OutputSerializer(draft_view).data)


OPERATION_DESCRIPTION = (
    "200 with the payment when the gateway confirmed at once; 202 when the gateway confirms later "
    "(the payment shows `pendingOperation` until its notification arrives) or did not answer in time "
    "(recovery re-sends it with the same idempotency key, so it never happens twice)."
)


def _operation_answer(payment: Payment) -> tuple[Response, bool]:
    """Capture's or cancel's answer built from the payment as it is now; final once the operation
    has ended (nothing is pending at the gateway)."""
    return _operation_response(payment), not payment.outcome_unknown


class PaymentOperationApi(ApiView):
    """Capture and cancel: an id no payment can have is 404 before anything runs or is stored (the
    Idempotency-Key's claim included). Their claim links to the payment in the commit that marks the
    operation as sent; a retry after a crash gets the payment as it is then (`_operation_answer`)."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if hasattr(self, request.method.lower()):  # another method is 405 first, whatever the id
            payment_id_check(payment_id=kwargs["payment_id"])


class PaymentCaptureApi(PaymentOperationApi):
    key_scope = "payments"

    # PaymentCaptureRequest in the document: COMPONENT_SPLIT_REQUEST appends "Request".
    @extend_schema_serializer(component_name="PaymentCapture")
    class InputSerializer(StrictInputSerializer):
        amount = AmountField(
            required=False,
            help_text="Up to the authorized amount, with the currency's digits. Omitted: the whole amount.",
        )

    @extend_schema(
        tags=[TAG],
        operation_id="payments_capture",
        summary="Capture an authorized payment",
        description="For a payment created with `capture: false`, now `Authorized`: takes the whole "
        "amount or part of it. " + OPERATION_DESCRIPTION,
        parameters=POSTED_PARAMETERS,
        request=InputSerializer,
        examples=[NOT_FOUND_EXAMPLE, CAPTURE_EXCEEDS_EXAMPLE],
        responses={
            200: PaymentOutputSerializer,
            202: PaymentOutputSerializer,
            **errors(*POSTED, *KEYED, 404, "409-operation", "422-capture", 503),
        },
    )
    @idempotent(answer_linked=_operation_answer)
    def post(self, request, payment_id: str):
        payment = payment_get(principal=request.user, payment_id=payment_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        payment = payment_capture(
            payment=payment, amount=serializer.validated_data.get("amount"), link=idempotency_link(request)
        )
        return _operation_response(payment)


class PaymentCancelApi(PaymentOperationApi):
    key_scope = "payments"

    @extend_schema_serializer(component_name="PaymentCancel")
    class InputSerializer(StrictInputSerializer):
        pass

    @extend_schema(
        tags=[TAG],
        operation_id="payments_cancel",
        summary="Cancel an authorized payment",
        description="Releases the hold of an `Authorized` payment; it ends `Cancelled` and nothing is "
        "charged. " + OPERATION_DESCRIPTION,
        parameters=POSTED_PARAMETERS,
        # An empty serializer would leave the body undocumented: it is optional, and takes no field.
        request={"application/json": {"type": "object", "additionalProperties": False, "properties": {}}},
        examples=[NOT_FOUND_EXAMPLE],
        responses={
            200: PaymentOutputSerializer,
            202: PaymentOutputSerializer,
            **errors(*POSTED, *KEYED, 404, "409-operation", "422-cancel", 503),
        },
    )
    @idempotent(answer_linked=_operation_answer)
    def post(self, request, payment_id: str):
        payment = payment_get(principal=request.user, payment_id=payment_id)
        self.InputSerializer(data=request.data).is_valid(raise_exception=True)
        return _operation_response(payment_cancel(payment=payment, link=idempotency_link(request)))


def _operation_response(payment: Payment) -> Response:
    done = payment.status in (PaymentStatus.COMPLETED, PaymentStatus.CANCELLED) and not payment.pending_operation
    return Response(
        PaymentOutputSerializer(payment).data, status=status.HTTP_200_OK if done else status.HTTP_202_ACCEPTED
    )
