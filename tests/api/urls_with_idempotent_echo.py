"""PGI's URLs plus an idempotent view that takes a path segment of any length."""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from pgi.api.idempotency import idempotent
from pgi.urls import urlpatterns as pgi_urlpatterns


class EchoApi(APIView):
    key_scope = "payments"  # a keyed view names its scopes (pgi.api.permissions)

    @idempotent
    def post(self, request, anything: str):
        return Response({"length": len(anything)})


urlpatterns = [path("v1/echo/<path:anything>", EchoApi.as_view()), *pgi_urlpatterns]
