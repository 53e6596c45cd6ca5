"""The single place where exceptions become `{"error": {"code", "message", "details"}}`."""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from pgi.errors import ApplicationError

# What a 415 tells the client to send; the middleware's 415 says the same.
MEDIA_TYPE_MESSAGE = "Send the body as application/json (Content-Type: application/json)."

logger = logging.getLogger(__name__)

# The database dropped the connection or cannot be reached (a restart, a failover,
# pg_terminate_backend, a lock or statement timeout): what the request was writing rolled back, and
# the same request may succeed in a moment. 503 with Retry-After, never a 500 (docs/04-operations.md,
# "Faults and what PGI does").
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
DATABASE_RETRY_AFTER_SECONDS = 1
DATABASE_UNAVAILABLE_ERROR = (
    "SERVICE_UNAVAILABLE",
    "The database is unavailable for a moment; send the request again (with the same Idempotency-Key).",
)

# DRF's own exceptions, by class, to our codes. Anything not listed keeps DRF's default_code upper-cased.
DRF_CODES = {
    exceptions.ParseError: "MALFORMED_JSON",
    exceptions.AuthenticationFailed: "UNAUTHENTICATED",
    exceptions.NotAuthenticated: "UNAUTHENTICATED",
    exceptions.PermissionDenied: "FORBIDDEN",
    exceptions.NotFound: "NOT_FOUND",
    exceptions.MethodNotAllowed: "METHOD_NOT_ALLOWED",
    exceptions.NotAcceptable: "NOT_ACCEPTABLE",
    exceptions.UnsupportedMediaType: "UNSUPPORTED_MEDIA_TYPE",
    exceptions.Throttled: "RATE_LIMITED",
    exceptions.ValidationError: "VALIDATION_ERROR",
}


def error_body(code: str, message: str, details: list[dict] | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or []}}


def flatten_validation_errors(detail, prefix: str = "") -> list[dict]:
    """DRF's nested {"field": ["msg"]} becomes [{"field": "field", "message": "msg"}]."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            name = "" if key == "non_field_errors" else str(key)
            path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            out.extend(flatten_validation_errors(value, path))
        return out
    if isinstance(detail, list):
        out = []
        for index, value in enumerate(detail):
            if isinstance(value, (dict, list)):
                out.extend(flatten_validation_errors(value, f"{prefix}[{index}]"))
            else:
                out.append({"field": prefix, "message": str(value)})
        return out
    return [{"field": prefix, "message": str(detail)}]


def api_exception_handler(exc, context):
    headers = {}
    if isinstance(exc, ApplicationError):
        body = error_body(exc.code, exc.message, [d.as_dict() for d in exc.details])
        return Response(body, status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, DATABASE_UNAVAILABLE):
        logger.error("Database unavailable in %s: %s", context.get("view").__class__.__name__, exc)
        return Response(
            error_body(*DATABASE_UNAVAILABLE_ERROR),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    if not isinstance(exc, exceptions.APIException):
        logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
        return Response(
            error_body("INTERNAL_ERROR", "An unexpected error occurred; it has been logged."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))

    code = next((c for cls, c in DRF_CODES.items() if isinstance(exc, cls)), None)
    code = code or str(exc.default_code).upper()
    explicit = getattr(exc.detail, "code", None)
    if isinstance(explicit, str) and explicit.isupper():
        # Raised with one of PGI's codes (DRF's own are lower case): AuthenticationFailed(code="API_KEY_EXPIRED").
        code = explicit
    if isinstance(exc, exceptions.ValidationError):
        details = flatten_validation_errors(exc.detail)
        message = "The request has invalid fields." if details else "The request is invalid."
        body = error_body(code, message, details)
    elif isinstance(exc, exceptions.UnsupportedMediaType):
        # DRF's text names only what was sent; the client needs to know what to send.
        body = error_body(code, f"{exc.detail} {MEDIA_TYPE_MESSAGE}")
    else:
        message = str(exc.detail) if not isinstance(exc.detail, (dict, list)) else str(exc.default_detail)
        body = error_body(code, message)
    if isinstance(exc, exceptions.NotAuthenticated):
        # DRF answers 403 when no authenticator offers a WWW-Authenticate header; ours does.
        exc.status_code = status.HTTP_401_UNAUTHORIZED
    return Response(body, status=exc.status_code, headers=headers)
