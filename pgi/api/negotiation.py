"""Content negotiation for an API that writes JSON only.

DRF's negotiation parses the Accept header and every renderer's media type for each request. With
one renderer and an Accept header of `*/*` or `application/json` (what clients send, or no header,
which DRF reads as `*/*`), the answer is that renderer as application/json, which this returns at
once. Any other Accept header (another type, parameters, several types) goes through DRF's own
negotiation, which answers 406 where it did. tests/api/test_negotiation.py compares the two.

A view that writes JSON only does not read DRF's `?format=` override: DRF answered 404 NOT_FOUND to
`?format=xml` on a URL that exists. The API's views refuse `format` as they refuse any query
parameter they do not know (400 VALIDATION_ERROR, "Unknown query parameter."). Views with several
renderers (the schema's `?format=json`) keep it.
"""

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.settings import api_settings

_PLAIN = frozenset({"*/*", "application/json"})


class _WithoutFormatOverride:
    """DRF's settings, but for the query parameter that names a format: none."""

    URL_FORMAT_OVERRIDE = None

    def __getattr__(self, name):
        return getattr(api_settings, name)


class _AcceptOnly(DefaultContentNegotiation):
    settings = _WithoutFormatOverride()


_ACCEPT_ONLY = _AcceptOnly()


class JsonContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        if len(renderers) != 1 or renderers[0].media_type != "application/json" or format_suffix:
            return super().select_renderer(request, renderers, format_suffix)
        if request.META.get("HTTP_ACCEPT", "*/*") in _PLAIN:
            return renderers[0], "application/json"
        return _ACCEPT_ONLY.select_renderer(request, renderers, format_suffix)
