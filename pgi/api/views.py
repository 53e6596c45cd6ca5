"""The base of PGI's API views."""

import json

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from pgi.cards import card_number_paths, has_card_number
from pgi.errors import CardNumberNotAccepted

from .idempotency import HEADER as IDEMPOTENCY_HEADER


class ApiView(APIView):
    """Refuses query parameters the operation does not read, as unknown body fields are refused:
    `GET /v1/payments/{id}?expand=…` answering as if nothing was asked would mislead a client.

    Views that read query parameters check them themselves (a StrictFilterSet) and return None
    from `known_query_params` for those methods.

    Every keyed view names the family of API key scopes it belongs to, `key_scope = "payments"`:
    reads need `payments:read`, anything else `payments:write` (pgi.api.permissions).
    """

    key_scope: str | None = None

    def known_query_params(self, request) -> frozenset[str] | None:
        return frozenset()

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication, permissions and throttles first
        card_numbers_refuse(request)
        known = self.known_query_params(request)
        if known is None:
            return
        unknown = sorted(set(request.query_params) - known)
        if unknown:
            raise ValidationError({name: ["Unknown query parameter."] for name in unknown})


def card_numbers_refuse(request) -> None:
    """Raise CardNumberNotAccepted when the body, the query string or the Idempotency-Key (stored
    with its answer) holds a card number anywhere (pgi.cards), before the view runs: nothing of the
    request is stored (no Idempotency-Key claim, no row) and the answer names the fields only."""
    paths = [
        path for name, values in request.query_params.lists() for value in values for path in card_number_paths({name: value})
    ]
    if request.method not in ("GET", "HEAD", "OPTIONS", "DELETE"):
        paths += card_number_paths(request.data)
    if has_card_number(request.headers.get(IDEMPOTENCY_HEADER, "")):
        paths.append(IDEMPOTENCY_HEADER)
    paths = list(dict.fromkeys(paths))
    if paths:
        raise CardNumberNotAccepted(paths)


def with_location(request, response, *, status_code: int, url_name: str, kwarg: str):
    """A `status_code` answer names the new object's URL (`url_name`, its id in `kwarg`), also when
    it is an Idempotency-Key replay (whose body is stored text)."""
    if response.status_code == status_code:
        body = response.data if isinstance(response, Response) else json.loads(response.content)
        response["Location"] = request.build_absolute_uri(reverse(url_name, kwargs={kwarg: body["id"]}))
    return response


class ApiIndexApi(ApiView):
    """`/v1`: where the API's resources are, for a person or a client finding its way. Like the
    schema it needs no key (one that is sent is not checked): it says nothing about any merchant."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(exclude=True)  # it points at the document; it is not an operation of it
    def get(self, request):
        def link(name: str) -> str:
            return request.build_absolute_uri(reverse(name))

        return Response(
            {
                "name": settings.SPECTACULAR_SETTINGS["TITLE"],
                "version": settings.SPECTACULAR_SETTINGS["VERSION"],
                "links": {
                    "payments": link("payments"),
                    "refunds": link("refunds"),
                    "settlements": link("settlements"),
                    "schema": link("schema"),
                    "swaggerUi": link("swagger-ui"),
                    "redoc": link("redoc"),
                    "docs": link("docs-index"),
                },
            }
        )
