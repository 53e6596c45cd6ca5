"""The base of PGI's API views."""

from rest_framework.exceptions import ValidationError
from rest_framework.views import APIView


class ApiView(APIView):
    """Refuses query parameters the operation does not read, as unknown body fields are refused:
    `GET /v1/payments/{id}?expand=…` answering as if nothing was asked would mislead a client.

    Views that read query parameters check them themselves (a StrictFilterSet) and return None
    from `known_query_params` for those methods.
    """

    def known_query_params(self, request) -> frozenset[str] | None:
        return frozenset()

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication, permissions and throttles first
        known = self.known_query_params(request)
        if known is None:
            return
        unknown = sorted(set(request.query_params) - known)
        if unknown:
            raise ValidationError({name: ["Unknown query parameter."] for name in unknown})
