"""JSON in: numbers become Decimal, never float; NaN and Infinity are refused."""

import json
from decimal import Decimal

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from .errors import PayloadTooLarge


def read_body(stream) -> bytes:
    """The request body, at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes; raises PayloadTooLarge beyond.

    DRF parsers read the request stream directly, which skips Django's own check of that setting.
    """
    if stream is None:
        return b""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is None:
        return stream.read()
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    return raw


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a valid JSON number")


class DecimalJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = read_body(stream).decode(encoding)
            return json.loads(
                text,
                parse_float=Decimal,
                parse_int=Decimal,
                parse_constant=_refuse_constant,
            )
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"The body is not valid JSON: {exc}") from exc
        except RecursionError as exc:  # json recurses once per nesting level
            raise ParseError("The body is not valid JSON: nested too deeply.") from exc
