"""JSON in: numbers become Decimal, never float; NaN, Infinity and duplicate keys are refused.

A request body is either absent (read as `{}`) or a JSON object: any other JSON value is refused
here, once, so that no view can mistake `[]`, `null` or `0` for "no body".
"""

import json
import re
from decimal import Decimal

from django.conf import settings
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.parsers import BaseParser

from pgi.cards import card_number_paths, has_card_number
from pgi.errors import CardNumberNotAccepted, ErrorDetail, PayloadTooLarge, ValidationFailed


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


# Deeper than any PGI body needs, and shallow enough that nothing which walks the data afterwards
# (idempotency fingerprints, serializers, the error renderer) can run out of stack.
MAX_DEPTH = 32


class DuplicateKey(ValueError):
    def __init__(self, key: str):
        self.key = json.dumps(key)  # quoted and escaped: the key may hold anything, a lone surrogate too
        super().__init__(f"the key {self.key} appears more than once in one object")


# The numbers PGI reads are amounts and counts. One whose exponent lies beyond this is no amount,
# and writing it out (the card-number check reads a number's digits, the idempotency fingerprint
# its canonical form) would take time and memory without bound: 1E+999999999 is a billion digits.
MAX_EXPONENT = 1000


class NumberOutOfRange(ValueError):
    pass


def _number(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except ArithmeticError:  # decimal.InvalidOperation: an exponent past what Decimal holds
        value = None
    if value is None or abs(value.as_tuple().exponent) > MAX_EXPONENT or abs(value.adjusted()) > MAX_EXPONENT:
        raise NumberOutOfRange(f"{text[:20]}{'…' if len(text) > 20 else ''} is beyond 1E±{MAX_EXPONENT}")
    return value


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a valid JSON number")


def _unique_object(pairs: list[tuple[str, object]]) -> dict:
    # Last-one-wins would let a proxy or a signature check read another value than PGI does.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return obj


LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_shape(data) -> None:
    """Raises ValueError for nesting deeper than MAX_DEPTH or a string (key or value) holding a
    lone surrogate, which JSON's \\u escapes can spell but no UTF-8 text (nor PostgreSQL) can hold.
    Walks without recursion."""
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            texts, children = list(value), value.values()
        elif isinstance(value, list):
            texts, children = [], value
        else:
            texts, children = ([value] if isinstance(value, str) else []), None
        if any(LONE_SURROGATE.search(text) for text in texts):
            raise ValueError("a string holds a lone UTF-16 surrogate (\\ud800 to \\udfff)")
        if children is not None:
            if depth > MAX_DEPTH:
                raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
            pending.extend((child, depth + 1) for child in children)


def loads_strict(text: str | bytes):
    """JSON with numbers as Decimal. Raises ValueError (DuplicateKey for a key repeated in one
    object, at any depth; NumberOutOfRange for a number beyond 1E±MAX_EXPONENT) for NaN/Infinity,
    bad syntax, nesting deeper than MAX_DEPTH or a lone surrogate in any string."""
    try:
        data = json.loads(
            text,
            parse_float=_number,
            parse_int=_number,
            parse_constant=_refuse_constant,
            object_pairs_hook=_unique_object,
        )
    except RecursionError as exc:  # json recurses once per nesting level
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from exc
    _check_shape(data)
    return data


class DecimalJSONParser(BaseParser):
    """The parser of every JSON endpoint. An empty body never reaches it: DRF reads that as `{}`."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        request = parser_context.get("request")
        coding = request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower() if request is not None else ""
        if coding not in ("", "identity"):
            # A compressed body is not read: the JSON inside it is not what the bytes say.
            raise UnsupportedMediaType(
                media_type, detail=f"Content-Encoding {coding[:32]!r} is not accepted; send the JSON uncompressed."
            )
        if encoding.replace("-", "").replace("_", "").lower() != "utf8":
            # JSON is UTF-8 (RFC 8259): a body read as another charset would be stored garbled.
            raise UnsupportedMediaType(
                media_type, detail=f"JSON is UTF-8: charset {encoding[:32]!r} is not accepted."
            )
        body = read_body(stream)
        try:
            data = loads_strict(body.decode(encoding))
        except (ValueError, UnicodeDecodeError) as exc:
            # Even a body that is not JSON is refused for a card number in it, and never echoed.
            if has_card_number(body.decode(encoding, "replace")):
                raise CardNumberNotAccepted([""]) from None
            if isinstance(exc, NumberOutOfRange):
                raise ValidationFailed(
                    "A number in the body is out of range.",
                    details=[ErrorDetail(field="", message=f"Numbers must lie between 1E-{MAX_EXPONENT} and "
                                                          f"1E+{MAX_EXPONENT} in size; {exc}.")],
                ) from exc
            if isinstance(exc, DuplicateKey):
                raise ParseError(f"The body is not valid JSON: the key {exc.key} appears more than once.") from exc
            raise ParseError(f"The body is not valid JSON: {exc}") from exc
        if not isinstance(data, dict) and card_number_paths(data):
            raise CardNumberNotAccepted([""])
        if not isinstance(data, dict):
            raise ValidationFailed(
                "The body must be a JSON object.", details=[ErrorDetail(field="", message="Must be a JSON object.")]
            )
        return data
