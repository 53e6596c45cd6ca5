import logging

from django.http import HttpResponse
from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from pgi.api.parsers import read_body
from pgi.api.serializers import ErrorSerializer
from pgi.errors import NotFound, ServiceUnavailable, ValidationFailed

from .base import InvalidNotification, InvalidSignature, WebhookNotConfigured
from .registry import UnknownGateway, get_connector
from .services import notification_problem, notification_receive

logger = logging.getLogger(__name__)


class RawBodyParser(BaseParser):
    """Leaves the body as bytes: signatures are computed over the exact bytes sent."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return read_body(stream)


class GatewayWebhookApi(APIView):
    """Notifications from a gateway. Authenticated by the gateway's signature, not by an API key."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []
    parser_classes = [RawBodyParser]

    @extend_schema_serializer(component_name="WebhookReceipt")
    class OutputSerializer(serializers.Serializer):
        received = serializers.BooleanField()
        matched = serializers.BooleanField(
            help_text="Whether every notification named a payment PGI knows; false for a delivery with none."
        )
        duplicate = serializers.BooleanField(help_text="Whether every notification had been received before.")

    @extend_schema(
        tags=["Gateways"],
        operation_id="gateway_webhook",
        summary="Receive a gateway notification (for gateways only)",
        description="Called by gateways, not merchants: no API key, the gateway's own signature instead. "
        "The body is verified against the gateway's signature scheme (simulator: `Simulator-Signature`; "
        "Stripe: `Stripe-Signature`; Adyen: HMAC of each item, and Basic auth when configured). A missing, "
        "bad or stale signature is 400 INVALID_SIGNATURE and changes nothing; a delivery that verifies but "
        "is not a notification PGI can read or store is 400 INVALID_NOTIFICATION and changes nothing. A "
        "gateway whose webhook secret is not set (or is a public one) is 503 WEBHOOK_NOT_CONFIGURED. A "
        "notification already received (same gateway event id) changes nothing. "
        "Adyen is answered with the text `[accepted]`, as it expects.",
        parameters=[
            OpenApiParameter(
                "code",
                str,
                location=OpenApiParameter.PATH,
                # The gateways this instance is configured with; any other code is 404 UNKNOWN_GATEWAY.
                enum=list(settings.PGI_GATEWAYS),
                description="The gateway's code, as in its webhook URL.",
            ),
            # Each connector reads its own; named here so that their checks are exercised too.
            OpenApiParameter("Simulator-Signature", str, location=OpenApiParameter.HEADER,
                             description="The simulator's signature of the body."),
            OpenApiParameter("Stripe-Signature", str, location=OpenApiParameter.HEADER,
                             description="Stripe's signature of the body."),
        ],
        request={"application/json": {"type": "object"}},
        auth=[],
        responses={
            (200, "application/json"): OutputSerializer,
            (200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="Adyen's `[accepted]`."),
            400: OpenApiResponse(ErrorSerializer, description="Missing or invalid signature (INVALID_SIGNATURE), "
                                 "or a verified delivery PGI cannot read or store (INVALID_NOTIFICATION)"),
            404: OpenApiResponse(ErrorSerializer, description="No such gateway here (UNKNOWN_GATEWAY)"),
            406: OpenApiResponse(ErrorSerializer, description="The Accept header allows no JSON (NOT_ACCEPTABLE)"),
            411: OpenApiResponse(ErrorSerializer, description="The body was sent in chunks, without a "
                                 "Content-Length (LENGTH_REQUIRED)"),
            413: OpenApiResponse(ErrorSerializer, description="The body is larger than the server accepts "
                                 "(PAYLOAD_TOO_LARGE)"),
            414: OpenApiResponse(ErrorSerializer, description="The path and query string are longer than 4096 "
                                 "characters (URI_TOO_LONG)"),
            431: OpenApiResponse(ErrorSerializer, description="A header is longer than the server accepts, or "
                                 "there are too many (REQUEST_HEADERS_TOO_LARGE)"),
            500: OpenApiResponse(ErrorSerializer, description="An unexpected error, logged by PGI (INTERNAL_ERROR)"),
            503: OpenApiResponse(ErrorSerializer, description="The gateway's webhook secret is not set here "
                                 "(WEBHOOK_NOT_CONFIGURED)"),
        },
    )
    def post(self, request, code: str):
        try:
            connector = get_connector(code)
        except UnknownGateway as exc:
            raise NotFound(f"No gateway {code}.", code="UNKNOWN_GATEWAY") from exc
        try:
            # An empty body reaches the view as DRF's empty data, not as bytes.
            body = request.data if isinstance(request.data, bytes) else b""
            events = connector.parse_webhook(headers=request.headers, body=body)
            # Checked for every item before any is stored: a batch is taken whole or not at all.
            for event in events:
                problem = notification_problem(event)
                if problem:
                    raise InvalidNotification(problem)
        except WebhookNotConfigured as exc:
            logger.warning("webhook to %s refused: %s", code, exc)  # check --deploy reports it as an error
            raise ServiceUnavailable(
                f"Webhooks of gateway {code} are not configured in this deployment: {exc}.",
                code="WEBHOOK_NOT_CONFIGURED",
            ) from exc
        except InvalidSignature as exc:
            logger.warning("webhook to %s refused: %s", code, exc)
            raise ValidationFailed(str(exc), code="INVALID_SIGNATURE") from exc
        except InvalidNotification as exc:
            logger.warning("webhook to %s verified but refused: %s", code, exc)
            raise ValidationFailed(str(exc), code="INVALID_NOTIFICATION") from exc
        receipts = [notification_receive(gateway=code, event=event) for event in events]
        for receipt in receipts:
            if not receipt.matched:
                logger.warning(
                    "webhook %s from %s names no payment of it (%s): kept for reconciliation",
                    receipt.notification.event_id,
                    code,
                    receipt.notification.payment_id or receipt.notification.gateway_reference,
                )
        if connector.webhook_reply is not None:
            reply = connector.webhook_reply
            return HttpResponse(reply.body, content_type=reply.content_type)
        return Response(
            self.OutputSerializer(
                {
                    "received": True,
                    # An empty delivery (an event type PGI does not act on) matched nothing.
                    "matched": bool(receipts) and all(receipt.matched for receipt in receipts),
                    "duplicate": bool(receipts) and all(receipt.duplicate for receipt in receipts),
                }
            ).data
        )
