"""PGI's URLs plus a plain Django view under /v1 that fails, to test errors raised outside DRF."""

from django.db import OperationalError
from django.http import HttpResponse, HttpResponseBadRequest
from django.urls import path

from pgi.urls import urlpatterns as pgi_urlpatterns


def plain_view_that_raises(request):
    raise RuntimeError("secret internal detail")


def plain_view_whose_database_is_gone(request):
    raise OperationalError("server closed the connection unexpectedly")


def plain_view_that_answers_html_400(request):
    return HttpResponseBadRequest("<html><body>Bad request</body></html>")


def plain_view_outside_the_api(request):
    raise RuntimeError("outside /v1")


def plain_view_that_is_fine(request):
    return HttpResponse("ok")


urlpatterns = [
    path("v1/plain/raises", plain_view_that_raises),
    path("v1/plain/database-gone", plain_view_whose_database_is_gone),
    path("v1/plain/html-400", plain_view_that_answers_html_400),
    path("v1/plain/ok", plain_view_that_is_fine),
    path("plain/raises", plain_view_outside_the_api),
    *pgi_urlpatterns,
]
