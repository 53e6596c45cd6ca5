"""Keeps the error format for responses that Django, not DRF, produces under /v1.

DRF's exception handler covers errors raised inside API views. Errors raised before a view runs
(an unknown URL, a disallowed host, an oversized body) or an exception that escapes a view are
rendered by Django as HTML; this middleware replaces those with the JSON error format.

It also refuses, before any view, a body sent in chunks (Django reads it as no body at all, which a
capture would take as "the whole amount"), a declared length over DATA_UPLOAD_MAX_MEMORY_SIZE
and a URL longer than MAX_URL_LENGTH. gunicorn.conf.py answers what never reaches Django in the
same format.
"""

import json
import logging

from django.conf import settings
from django.http import JsonResponse
from django.urls import Resolver404, resolve

from .exception_handler import (
    DATABASE_RETRY_AFTER_SECONDS,
    DATABASE_UNAVAILABLE,
    DATABASE_UNAVAILABLE_ERROR,
    MEDIA_TYPE_MESSAGE,
    error_body,
)

logger = logging.getLogger(__name__)

API_PREFIX = "/v1/"
# Path plus query string, in characters. Below gunicorn's request-line limit (8190 bytes), so that
# PGI, not gunicorn, answers a long URL; far above what any /v1 URL needs.
MAX_URL_LENGTH = 4096

CODES_BY_STATUS = {
    400: ("BAD_REQUEST", "The request could not be understood."),
    401: ("UNAUTHENTICATED", "Authentication credentials were not provided or are invalid."),
    403: ("FORBIDDEN", "You do not have permission to perform this action."),
    404: ("NOT_FOUND", "No resource exists at this URL."),
    405: ("METHOD_NOT_ALLOWED", "This method is not allowed on this URL."),
    411: ("LENGTH_REQUIRED", "A request body must be sent with a Content-Length, not in chunks."),
    413: ("PAYLOAD_TOO_LARGE", "The request body is too large."),
    414: ("URI_TOO_LONG", f"The URL is longer than {MAX_URL_LENGTH} characters."),
    415: ("UNSUPPORTED_MEDIA_TYPE", MEDIA_TYPE_MESSAGE),
    429: ("RATE_LIMITED", "Too many requests."),
    500: ("INTERNAL_ERROR", "An unexpected error occurred; it has been logged."),
    503: ("SERVICE_UNAVAILABLE", "The service is unavailable for a moment; try again."),
}


def json_error_response(status: int, message: str | None = None) -> JsonResponse:
    code, default = CODES_BY_STATUS.get(status, (f"HTTP_{status}", "The request failed."))
    return JsonResponse(error_body(code, message or default), status=status)


def path_without_trailing_slash(path: str) -> str | None:
    """`/v1/payments` for `/v1/payments/`, when that is a URL of the API; else None. PGI's URLs end
    without a slash, and a client that adds one deserves to be told rather than left guessing."""
    stripped = path.rstrip("/")
    if stripped == path or not stripped:
        return None
    try:
        resolve(stripped)
    except Resolver404:
        return None
    return stripped


def is_api_path(path: str) -> bool:
    """Whether `path` is under /v1, also when spelled otherwise (`//v1/…`, `/./v1`, `/V1`): such a
    spelling routes nowhere, and its 404 is an API answer too."""
    if path.startswith(API_PREFIX):  # every request to the API, at once
        return True
    segments = [segment for segment in path.split("/") if segment not in ("", ".")]
    return bool(segments) and segments[0].lower() == API_PREFIX.strip("/")


def refusal_before_view(request) -> int | None:
    """The status for a request to /v1 that no view should see, or None."""
    if len(request.get_full_path()) > MAX_URL_LENGTH:
        return 414
    if "HTTP_TRANSFER_ENCODING" in request.META:
        return 411
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    # Answered from the declared length, before reading a body that will be refused anyway.
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if limit is not None and declared.isdigit() and int(declared) > limit:
        return 413
    return None


class ApiErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if is_api_path(request.path):
            status = refusal_before_view(request)
            if status is not None:
                return json_error_response(status)
        response = self.get_response(request)
        if not is_api_path(request.path) or response.status_code < 400:
            return response
        if _is_error_json(response):
            return response
        message = None
        if response.status_code == 404 and (hint := path_without_trailing_slash(request.path)):
            message = f"No resource exists at this URL; PGI's URLs have no trailing slash: {hint}"
        replacement = json_error_response(response.status_code, message)
        # Keep what inner middleware and the view said (Allow, Retry-After, X-Frame-Options…).
        for header, value in response.items():
            if header.lower() not in {"content-type", "content-length"}:
                replacement[header] = value
        return replacement

    def process_exception(self, request, exception):
        if not is_api_path(request.path):
            return None
        if isinstance(exception, DATABASE_UNAVAILABLE):  # outside a DRF view (the exception handler has its own)
            logger.error("Database unavailable on %s %s: %s", request.method, request.path, exception)
            response = JsonResponse(error_body(*DATABASE_UNAVAILABLE_ERROR), status=503)
            response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
            return response
        logger.exception("Unhandled error on %s %s", request.method, request.path)
        return json_error_response(500)


def _is_error_json(response) -> bool:
    if "json" not in response.get("Content-Type", "") or getattr(response, "streaming", False):
        return False
    try:
        return "error" in json.loads(response.content)
    except ValueError:
        return False
