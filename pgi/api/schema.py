"""drf-spectacular postprocessing: what the view decorators cannot say about the OpenAPI document."""

from drf_spectacular.plumbing import alpha_operation_sorter

GATEWAY_PATH_PREFIX = "/v1/gateways/"


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
