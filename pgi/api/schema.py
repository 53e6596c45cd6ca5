"""drf-spectacular: the schema class of every view (the API key scope each operation needs) and
postprocessing, what the view decorators cannot say about the OpenAPI document."""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import alpha_operation_sorter
from drf_spectacular.utils import OpenApiResponse

from .openapi import error_example
from .permissions import INSUFFICIENT_SCOPE, required_scope
from .serializers import ErrorSerializer

GATEWAY_PATH_PREFIX = "/v1/gateways/"


class ScopedAutoSchema(AutoSchema):
    """Each keyed operation names the API key scope it needs, in its description and in its 403
    (added, or joined to the operation's own 403), from the view's `key_scope` (pgi.api.permissions):
    the document cannot disagree with what the permission checks. Done on the finished operation,
    as @extend_schema replaces the methods that would otherwise say it."""

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        scope = required_scope(self.view, self.method)
        if operation is None or scope is None:
            return operation
        operation["description"] = f"{operation.get('description', '')}\n\nAPI key scope: `{scope}`.".lstrip()
        text = f"the key lacks the scope `{scope}` ({INSUFFICIENT_SCOPE})"
        example = error_example(
            "A key without the scope",
            403,
            INSUFFICIENT_SCOPE,
            f"This API key lacks the scope {scope} that this operation needs.",
            [{"field": "scope", "message": f"Needs {scope}; the key has: {EXAMPLE_HELD}."}],
        )
        responses = operation["responses"]
        own = responses.get("403")
        description = f"{own['description']}, or {text}" if own else text[0].upper() + text[1:]
        forbidden = self._get_response_for_code(
            OpenApiResponse(ErrorSerializer, description=description, examples=[example]), "403"
        )
        if own:  # keep the operation's own examples of its 403
            own_examples = own["content"]["application/json"].get("examples", {})
            forbidden["content"]["application/json"]["examples"] = {
                **own_examples, **forbidden["content"]["application/json"].get("examples", {})
            }
        operation["responses"] = dict(sorted({**responses, "403": forbidden}.items(), key=lambda item: item[0]))
        return operation


# The scopes of the key in the 403 examples: one that may only read payments.
EXAMPLE_HELD = "payments:read"


def payments_first(endpoint):
    """SORT_OPERATIONS: the document lists what integrators call first, gateways' webhooks last."""
    path = endpoint[0]
    return (path.startswith(GATEWAY_PATH_PREFIX), alpha_operation_sorter(endpoint))


# From a new payment to what can be done with it, for clients and for workflow tests.
PAYMENT_LINKS = {
    "GetPayment": ("payments_retrieve", "The payment just created."),
    "GetPaymentStatus": ("payments_status", "Its status, for polling."),
    "CapturePayment": ("payments_capture", "Capture it, when created with `capture: false`."),
    "CancelPayment": ("payments_cancel", "Release its hold, when created with `capture: false`."),
}


def _operations(result):
    for path_item in result.get("paths", {}).values():
        yield from path_item.values()


# From a new refund to the refund and to its payment.
REFUND_LINKS = {
    "GetRefund": ("refunds_retrieve", "refund_id", "id", "The refund just accepted, for its status."),
    "GetPayment": ("payments_retrieve", "payment_id", "paymentId", "The refunded payment, with `refundedAmount`."),
}


def add_payment_links(result, generator, request, public):
    for operation in _operations(result):
        if operation.get("operationId") == "payments_create":
            operation["responses"]["201"]["links"] = {
                name: {
                    "operationId": operation_id,
                    "parameters": {"payment_id": "$response.body#/id"},
                    "description": description,
                }
                for name, (operation_id, description) in PAYMENT_LINKS.items()
            }
        elif operation.get("operationId") == "refunds_create":
            operation["responses"]["202"]["links"] = {
                name: {
                    "operationId": operation_id,
                    "parameters": {parameter: f"$response.body#/{field}"},
                    "description": description,
                }
                for name, (operation_id, parameter, field, description) in REFUND_LINKS.items()
            }
    return result


def close_request_bodies(result, generator, request, public):
    """Input serializers refuse unknown fields (StrictInputSerializer): say so in their schemas."""
    schemas = result.get("components", {}).get("schemas", {})
    for operation in _operations(result):
        for media in operation.get("requestBody", {}).get("content", {}).values():
            name = media.get("schema", {}).get("$ref", "").rpartition("/")[2]
            if name in schemas and "properties" in schemas[name]:
                schemas[name]["additionalProperties"] = False
    return result


def mark_unauthenticated_operations(result, generator, request, public):
    """An operation without an API key (a gateway's webhook) says so with `security: []` instead of
    leaving it unsaid."""
    for operation in _operations(result):
        operation.setdefault("security", [])
    return result
