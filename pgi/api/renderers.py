"""JSON out: Decimal is written as its exact decimal text (50.00 stays 50.00), never via float."""

import simplejson
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

_fallback = JSONEncoder()


class DecimalJSONRenderer(JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        return simplejson.dumps(
            data,
            use_decimal=True,
            default=_fallback.default,
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8", "backslashreplace")  # a lone surrogate in an echoed value must not be a 500
