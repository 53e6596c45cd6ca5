"""The API's content negotiation answers as DRF's own for every Accept header; `?format=` is not read."""

import pytest
from django.http import Http404
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from pgi.api.negotiation import JsonContentNegotiation
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer

from pgi.api.renderers import DecimalJSONRenderer

ACCEPTS = [
    None, "*/*", "application/json", "application/*", "application/json; indent=4", "text/html",
    "text/html, application/json;q=0.9", "application/xml", "", "*/*;q=0.1", "application/json, */*",
]


def chosen(negotiation, accept, query="", renderers=(DecimalJSONRenderer,)):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().get(f"/v1/payments{query}", **headers))
    try:
        renderer, media_type = negotiation.select_renderer(request, [cls() for cls in renderers])
    except NotAcceptable:
        return "406"
    except Http404:  # ?format= naming no renderer
        return "404"
    return type(renderer), media_type


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("query", ["", "?format=json", "?format=xml", "?format=api", "?format="])
def test_the_answer_is_drfs_for_the_accept_header_alone(accept, query):
    assert chosen(JsonContentNegotiation(), accept, query) == chosen(DefaultContentNegotiation(), accept)


@pytest.mark.parametrize("query", ["?format=json", "?format=yaml", "?format=xml"])
def test_a_view_with_several_renderers_keeps_drfs_format_override(query):
    renderers = (OpenApiYamlRenderer, OpenApiJsonRenderer)
    ours = chosen(JsonContentNegotiation(), None, query, renderers)
    assert ours == chosen(DefaultContentNegotiation(), None, query, renderers)
    expected = {"?format=json": OpenApiJsonRenderer, "?format=yaml": OpenApiYamlRenderer}.get(query)
    assert ours == "404" if expected is None else ours[0] is expected


def test_a_json_client_gets_json_and_another_a_406():
    assert chosen(JsonContentNegotiation(), "*/*") == (DecimalJSONRenderer, "application/json")
    assert chosen(JsonContentNegotiation(), "text/html") == "406"
