"""Domain errors, layer-neutral. Services raise these whoever calls them (the REST API, a consumer,
a Celery task, a management command); pgi.api.exception_handler turns them into the error format.

Each class carries a stable UPPER_SNAKE code that clients can switch on, and the HTTP status that
the API answers with.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorDetail:
    field: str
    message: str

    def as_dict(self) -> dict:
        return {"field": self.field, "message": self.message}


class ApplicationError(Exception):
    status_code = 400
    code = "BAD_REQUEST"

    def __init__(self, message: str, *, code: str | None = None, details: list[ErrorDetail] | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or []


class ValidationFailed(ApplicationError):
    """The request is well-formed JSON but a field is missing, malformed or out of range."""

    status_code = 400
    code = "VALIDATION_ERROR"


class PermissionDenied(ApplicationError):
    status_code = 403
    code = "FORBIDDEN"


class NotFound(ApplicationError):
    status_code = 404
    code = "NOT_FOUND"


class Conflict(ApplicationError):
    status_code = 409
    code = "CONFLICT"


class BusinessRuleViolation(ApplicationError):
    """Valid input that the merchant's configuration or a business rule refuses."""

    status_code = 422
    code = "UNPROCESSABLE"


class PayloadTooLarge(ApplicationError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"


class ServiceUnavailable(ApplicationError):
    """A dependency PGI needs for this request (a gateway) cannot be reached; nothing was done."""

    status_code = 503
    code = "SERVICE_UNAVAILABLE"


class CardNumberNotAccepted(ValidationFailed):
    """Fields hold something shaped like a card number (pgi.cards): PGI takes no card data. The
    details name the fields (`paths`; "" for a body that is not JSON), never what they held."""

    code = "CARD_NUMBER_NOT_ACCEPTED"

    def __init__(self, paths: list[str]):
        from pgi.cards import REFUSAL_MESSAGE

        super().__init__(
            "A field holds a card number; PGI does not accept card data.",
            details=[ErrorDetail(path, REFUSAL_MESSAGE) for path in paths],
        )
