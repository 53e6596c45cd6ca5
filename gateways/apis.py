import logging

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from payments.models import Payment, PaymentStatusChange
from payments.services import payment_apply_gateway_result
from pgi.api.errors import NotFound, ValidationFailed
from pgi.api.parsers import read_body
from pgi.api.serializers import ErrorSerializer

from .base import InvalidWebhook
from .registry import UnknownGateway, get_connector

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
        matched = serializers.BooleanField(help_text="Whether the notification named a payment PGI knows.")

    @extend_schema(
        tags=["Gateways"],
        operation_id="gateway_webhook",
        summary="Receive a gateway notification",
        description="Called by gateways, not merchants. The body is verified against the gateway's signature "
        "header (for the simulator, `Simulator-Signature: t=<unix>,v1=<hex HMAC-SHA256>`); a bad or stale "
        "signature is 400 INVALID_SIGNATURE and changes nothing.",
        request={"application/json": {"type": "object"}},
        auth=[],
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(ErrorSerializer, description="INVALID_SIGNATURE"),
            404: OpenApiResponse(ErrorSerializer, description="UNKNOWN_GATEWAY"),
            413: OpenApiResponse(ErrorSerializer, description="PAYLOAD_TOO_LARGE"),
        },
    )
    def post(self, request, code: str):
        try:
            connector = get_connector(code)
        except UnknownGateway as exc:
            raise NotFound(f"No gateway {code}.", code="UNKNOWN_GATEWAY") from exc
        try:
            event = connector.parse_webhook(headers=request.headers, body=request.data)
        except InvalidWebhook as exc:
            raise ValidationFailed(str(exc), code="INVALID_SIGNATURE") from exc
        if not Payment.objects.filter(pk=event.payment_id, gateway=code).exists():
            logger.warning("webhook %s from %s names unknown payment %s", event.event_id, code, event.payment_id)
            return Response(self.OutputSerializer({"received": True, "matched": False}).data)
        payment_apply_gateway_result(
            payment_id=event.payment_id, result=event.result, source=PaymentStatusChange.Source.WEBHOOK
        )
        return Response(self.OutputSerializer({"received": True, "matched": True}).data)
