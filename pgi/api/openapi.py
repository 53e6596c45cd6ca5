"""OpenAPI pieces shared by every keyed API app's views (payments, refunds): error responses, the
headers of keyed and posted operations, the page parameters, error examples. Each app adds the
descriptions of its own statuses (its 404, its 422 codes) to `error_responses`."""

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse

from .idempotency import HEADER as IDEMPOTENCY_HEADER
from .idempotency import REPLAY_HEADER
from .pagination import CreatedCursorPagination
from .serializers import ErrorSerializer

# What the same status means on every operation; an app's own descriptions are added to these.
COMMON_ERRORS = {
    400: "Malformed JSON, an invalid field or Idempotency-Key, or an unknown query parameter "
    "(VALIDATION_ERROR, MALFORMED_JSON); a card number in any field (CARD_NUMBER_NOT_ACCEPTED)",
    "400-query": "An invalid filter, cursor or limit, or an unknown query parameter (VALIDATION_ERROR); a card "
    "number in a parameter (CARD_NUMBER_NOT_ACCEPTED)",
    401: "Missing, invalid or revoked API key (UNAUTHENTICATED), or one past its expiry (API_KEY_EXPIRED)",
    406: "The Accept header allows no JSON (NOT_ACCEPTABLE)",
    409: "A request with the same Idempotency-Key is in progress (IDEMPOTENCY_IN_PROGRESS; see Retry-After)",
    411: "The body was sent in chunks, without a Content-Length (LENGTH_REQUIRED)",
    413: "The body is larger than the server accepts (PAYLOAD_TOO_LARGE)",
    414: "The path and query string are longer than 4096 characters (URI_TOO_LONG)",
    415: "The body is not application/json (UNSUPPORTED_MEDIA_TYPE)",
    429: "Too many requests for this key, or for all of its merchant's keys together (RATE_LIMITED); "
    "Retry-After says when to try again",
    431: "A header is longer than the server accepts, or there are too many (REQUEST_HEADERS_TOO_LARGE)",
    500: "An unexpected error, logged by PGI (INTERNAL_ERROR)",
}


def error_responses(*codes: int | str, descriptions: dict) -> dict:
    """The error responses of an operation, each with the Error schema. A code is a status or a
    status with a suffix (`409-operation`) that picks another description of that status, from
    `descriptions` (the app's own) or COMMON_ERRORS."""
    known = {**COMMON_ERRORS, **descriptions}
    return {
        int(str(code).split("-")[0]): OpenApiResponse(ErrorSerializer, description=known[code]) for code in codes
    }


# Every operation under an API key can answer these (414 and 431 before PGI reads the key).
KEYED = (401, 406, 414, 429, 431, 500)
# And every POST with a JSON body and an Idempotency-Key these.
POSTED = (400, 409, 411, 413, 415)

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    type={"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    location=OpenApiParameter.HEADER,
    required=False,
    description="Optional: 1 to 255 printable ASCII characters without spaces. Replays the first "
    "response for 24 hours; with a body that means something else it is refused. After a crash, a "
    "retry gets what the first request created.",
)
# A replay is the first response as it was, whatever its status, with this header.
REPLAYED_HEADER = OpenApiParameter(
    REPLAY_HEADER,
    type={"type": "string", "enum": ["true"]},
    location=OpenApiParameter.HEADER,
    response=True,
    description="`true` when this is the stored response of an earlier request with the same Idempotency-Key.",
)
RETRY_AFTER_HEADER = OpenApiParameter(
    "Retry-After",
    type={"type": "string", "pattern": "^[0-9]+$"},
    location=OpenApiParameter.HEADER,
    response=[409, 429],
    description="Seconds to wait before sending again: the rate limit (429) or the lease of a request with "
    "the same Idempotency-Key still running (409).",
)
AUTHENTICATE_HEADER = OpenApiParameter(
    "WWW-Authenticate",
    type=str,
    location=OpenApiParameter.HEADER,
    response=[401],
    description='`Bearer realm="pgi"`: the scheme the API key goes in.',
)
RESPONSE_HEADERS = [RETRY_AFTER_HEADER, AUTHENTICATE_HEADER]
POSTED_PARAMETERS = [IDEMPOTENCY_PARAMETER, REPLAYED_HEADER, *RESPONSE_HEADERS]

# The query parameters of CreatedCursorPagination, for a list's `parameters`.
PAGE_PARAMETERS = [
    OpenApiParameter("cursor", str, description="Opaque position from `next` or `previous`."),
    OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": CreatedCursorPagination.max_page_size},
        description="Page size, 1 to 200 (default 50).",
    ),
]


def error_example(name: str, status_code: int, code: str, message: str, details=()) -> OpenApiExample:
    return OpenApiExample(
        name,
        value={"error": {"code": code, "message": message, "details": list(details)}},
        response_only=True,
        status_codes=[str(status_code)],
    )


VALIDATION_ERROR_EXAMPLE = error_example(
    "An invalid field",
    400,
    "VALIDATION_ERROR",
    "The request has invalid fields.",
    [{"field": "amount", "message": "USD allows at most 2 decimal places."}],
)
