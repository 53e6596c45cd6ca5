"""Content negotiation for an API that writes JSON only.

DRF's negotiation parses the Accept header and every renderer's media type for each request. With
one renderer and an Accept header of `*/*` or `application/json` (what clients send, or no header,
which DRF reads as `*/*`), the answer is that renderer as application/json, which this returns at
once. Anything else (another type, parameters, several types, `?format=`) goes through DRF's own
negotiation, which answers 406 where it did. tests/api/test_negotiation.py compares the two.
"""

from rest_framework.negotiation import DefaultContentNegotiation

_PLAIN = frozenset({"*/*", "application/json"})


class JsonContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        if (
            len(renderers) == 1
            and not format_suffix
            and request.META.get("HTTP_ACCEPT", "*/*") in _PLAIN
            and renderers[0].media_type == "application/json"
            and self.settings.URL_FORMAT_OVERRIDE not in request.query_params
        ):
            return renderers[0], "application/json"
        return super().select_renderer(request, renderers, format_suffix)
