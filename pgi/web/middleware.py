"""Request guards and response headers that apply to every view."""

from django.http import HttpResponseBadRequest

from pgi.api.middleware import is_api_path

# The OpenAPI document and its viewers carry no payment data; a browser may cache them.
CACHEABLE_API_PREFIX = "/v1/schema"


def has_nul(request) -> bool:
    """A NUL byte in the path, a query parameter's name or value, or a cookie.

    PostgreSQL refuses NUL in text, so such a value would fail every lookup it reaches; no valid
    id, filter, search term or session key contains one.
    """
    if "\x00" in request.path:
        return True
    if any("\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()):
        return True
    return any("\x00" in key or "\x00" in value for key, value in request.COOKIES.items())


class RefuseNulMiddleware:
    """400 for a request with a NUL byte before any view, session or login lookup sees it.

    Not under /v1: the API checks its own ids and parameters and answers with the field at fault
    (a payment id that cannot exist is 404, a filter value 400 VALIDATION_ERROR), and it reads no
    session.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not is_api_path(request.path) and has_nul(request):
            return HttpResponseBadRequest("Bad request: the URL, a query parameter or a cookie contains a NUL byte.")
        return self.get_response(request)


class ApiNoStoreMiddleware:
    """`Cache-Control: no-store` on every /v1 answer, errors included: they carry payment data."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if is_api_path(request.path) and not request.path.startswith(CACHEABLE_API_PREFIX):
            response["Cache-Control"] = "no-store"
        return response
