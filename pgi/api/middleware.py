"""Keeps the error format for responses that Django, not DRF, produces under /v1.

DRF's exception handler covers errors raised inside API views. Errors raised before a view runs
(an unknown URL, a disallowed host, an oversized body) or an exception that escapes a view are
rendered by Django as HTML; this middleware replaces those with the JSON error format.
"""

import json
import logging

from django.http import JsonResponse

from .exception_handler import error_body

logger = logging.getLogger(__name__)

API_PREFIX = "/v1/"

CODES_BY_STATUS = {
    400: ("BAD_REQUEST", "The request could not be understood."),
    401: ("UNAUTHENTICATED", "Authentication credentials were not provided or are invalid."),
    403: ("FORBIDDEN", "You do not have permission to perform this action."),
    404: ("NOT_FOUND", "No resource exists at this URL."),
    405: ("METHOD_NOT_ALLOWED", "This method is not allowed on this URL."),
    413: ("PAYLOAD_TOO_LARGE", "The request body is too large."),
    415: ("UNSUPPORTED_MEDIA_TYPE", "The request body must be application/json."),
    429: ("RATE_LIMITED", "Too many requests."),
    500: ("INTERNAL_ERROR", "An unexpected error occurred; it has been logged."),
}


def json_error_response(status: int) -> JsonResponse:
    code, message = CODES_BY_STATUS.get(status, (f"HTTP_{status}", "The request failed."))
    return JsonResponse(error_body(code, message), status=status)


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIX) or path == API_PREFIX.rstrip("/")


class ApiErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not is_api_path(request.path) or response.status_code < 400:
            return response
        if _is_error_json(response):
            return response
        replacement = json_error_response(response.status_code)
        # Keep what inner middleware and the view said (Allow, Retry-After, X-Frame-Options…).
        for header, value in response.items():
            if header.lower() not in {"content-type", "content-length"}:
                replacement[header] = value
        return replacement

    def process_exception(self, request, exception):
        if not is_api_path(request.path):
            return None
        logger.exception("Unhandled error on %s %s", request.method, request.path)
        return json_error_response(500)


def _is_error_json(response) -> bool:
    if "json" not in response.get("Content-Type", "") or getattr(response, "streaming", False):
        return False
    try:
        return "error" in json.loads(response.content)
    except ValueError:
        return False
