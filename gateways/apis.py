import logging

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from pgi.api.errors import NotFound, ServiceUnavailable, ValidationFailed
from pgi.api.parsers import read_body
from pgi.api.serializers import ErrorSerializer

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
        matched = serializers.BooleanField(help_text="Whether every notification named a payment PGI knows.")
        duplicate = serializers.BooleanField(help_text="Whether every notification had been received before.")

    @extend_schema(
        tags=["Gateways"],
        operation_id="gateway_webhook",
        summary="Receive a gateway notification",
        description="Called by gateways, not merchants. The body is verified against the gateway's own "
        "signature scheme (simulator: `Simulator-Signature`; Stripe: `Stripe-Signature`; Adyen: HMAC of "
        "each item, and Basic auth when configured). A bad or stale signature is 400 INVALID_SIGNATURE "
        "and changes nothing; a delivery that verifies but is not a notification PGI can read or store "
        "is 400 INVALID_NOTIFICATION and changes nothing. A gateway whose webhook secret is not set (or "
        "is a public one) is 503 WEBHOOK_NOT_CONFIGURED. A notification already received (same gateway "
        "event id) changes nothing. "
        "Adyen is answered with the text `[accepted]`, as it expects.",
        request={"application/json": {"type": "object"}},
        auth=[],
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(ErrorSerializer, description="INVALID_SIGNATURE, INVALID_NOTIFICATION"),
            404: OpenApiResponse(ErrorSerializer, description="UNKNOWN_GATEWAY"),
            413: OpenApiResponse(ErrorSerializer, description="PAYLOAD_TOO_LARGE"),
            503: OpenApiResponse(ErrorSerializer, description="WEBHOOK_NOT_CONFIGURED"),
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
                    "matched": all(receipt.matched for receipt in receipts),
                    "duplicate": bool(receipts) and all(receipt.duplicate for receipt in receipts),
                }
            ).data
        )
