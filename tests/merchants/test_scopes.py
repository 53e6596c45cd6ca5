"""API key scopes: every keyed operation under /v1 names its scope (read for GET, write for the
rest), and a key without it gets 403 INSUFFICIENT_SCOPE. The operations are read from the URL conf,
so an endpoint added without a scope fails here."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from payments.models import Payment
from pgi.api.permissions import HasRequiredScope, required_scope
from pgi.errors import PermissionDenied
from pgi.merchants.scopes import ALL_SCOPES, DEFAULT_SCOPES, SCOPES
from pgi.merchants.services import api_key_create

from ..api.helpers import assert_error, payment_body, post_json
from ..conftest import client_for

pytestmark = pytest.mark.django_db

HANDLER_METHODS = ("get", "post", "put", "patch", "delete")
# The only views under /v1 that take no API key: what they answer concerns no merchant.
UNKEYED_VIEWS = {"ApiIndexApi", "GatewayWebhookApi", "SpectacularAPIView", "SpectacularSwaggerView", "SpectacularRedocView"}


def api_views(patterns=None, prefix=""):
    """(route, view class) of every DRF view in the URL conf."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from api_views(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            view = getattr(entry.callback, "cls", None) or getattr(entry.callback, "view_class", None)
            if isinstance(view, type) and issubclass(view, APIView):
                yield "/" + route, view


def is_keyed(view: type[APIView]) -> bool:
    return bool(view.authentication_classes) and AllowAny not in view.permission_classes


def keyed_operations():
    return [
        pytest.param(route, view, method, id=f"{method.upper()} {route}")
        for route, view in api_views()
        if route.startswith("/v1/") and is_keyed(view)
        for method in HANDLER_METHODS
        if hasattr(view, method)
    ]


KEYED_OPERATIONS = keyed_operations()


def url_of(route: str) -> str:
    return re.sub(r"<(?:\w+:)?\w+>", "x", route)


def send(full_key: str, route: str, method: str):
    client = client_for(full_key)
    if method == "get":
        return client.get(url_of(route))
    return getattr(client, method)(url_of(route), data="{}", content_type="application/json")


def test_the_url_conf_has_the_api_and_only_the_known_views_take_no_key():
    unkeyed = {view.__name__ for route, view in api_views() if route.startswith("/v1") and not is_keyed(view)}

    assert unkeyed == UNKEYED_VIEWS
    assert len(KEYED_OPERATIONS) >= 23  # payments, refunds, settlements, webhooks: none dropped unseen


@pytest.mark.parametrize(("route", "view", "method"), KEYED_OPERATIONS)
def test_every_keyed_operation_names_a_scope_that_exists_read_for_get_write_for_the_rest(route, view, method):
    scope = required_scope(view(), method.upper())

    assert scope in SCOPES, f"{view.__name__} sets no key_scope, or one without a {method.upper()} scope"
    assert scope.endswith(":read" if method == "get" else ":write")
    assert HasRequiredScope in view.permission_classes


@pytest.mark.parametrize(("route", "view", "method"), KEYED_OPERATIONS)
def test_a_key_without_the_operations_scope_gets_403_insufficient_scope(merchant, route, view, method):
    scope = required_scope(view(), method.upper())
    _, full_key = api_key_create(name="narrow", merchant=merchant, scopes=[s for s in ALL_SCOPES if s != scope])

    response = send(full_key, route, method)

    error = assert_error(response, 403, "INSUFFICIENT_SCOPE", field="scope")
    assert scope in error["message"] and scope in error["details"][0]["message"]


@pytest.mark.parametrize(("route", "view", "method"), KEYED_OPERATIONS)
def test_a_key_with_only_the_operations_scope_gets_past_the_scope_check(merchant, route, view, method):
    scope = required_scope(view(), method.upper())
    _, full_key = api_key_create(name="narrow", merchant=merchant, scopes=[scope])

    response = send(full_key, route, method)

    assert response.status_code != 401
    if response.status_code == 403:
        assert response.json()["error"]["code"] != "INSUFFICIENT_SCOPE", response.json()


def test_a_read_only_key_cannot_take_a_payment_and_nothing_is_stored(merchant):
    _, full_key = api_key_create(name="reports", merchant=merchant, scopes=["payments:read"])
    client = client_for(full_key)

    refused = post_json(client, "/v1/payments", payment_body())

    assert_error(refused, 403, "INSUFFICIENT_SCOPE", field="scope")
    assert "payments:write" in refused.json()["error"]["message"]
    assert not Payment.objects.exists()
    assert client.get("/v1/payments").status_code == 200


def test_a_key_with_no_scopes_authenticates_but_may_do_nothing(merchant):
    _, full_key = api_key_create(name="parked", merchant=merchant, scopes=[])

    response = client_for(full_key).get("/v1/payments")

    error = assert_error(response, 403, "INSUFFICIENT_SCOPE", field="scope")
    assert "the key has: none" in error["details"][0]["message"]


def test_new_keys_get_the_default_scopes_without_settlements(merchant):
    api_key, full_key = api_key_create(name="checkout", merchant=merchant)
    client = client_for(full_key)

    assert api_key.scopes == DEFAULT_SCOPES
    assert "settlements:read" not in api_key.scopes
    assert client.get("/v1/payments").status_code == 200
    assert_error(client.get("/v1/settlements"), 403, "INSUFFICIENT_SCOPE")


def test_an_unknown_scope_is_refused_and_no_key_is_issued(merchant):
    from pgi.errors import ValidationFailed
    from pgi.merchants.models import ApiKey

    with pytest.raises(ValidationFailed) as raised:
        api_key_create(name="checkout", merchant=merchant, scopes=["payments:read", "payments:admin"])

    assert [d.field for d in raised.value.details] == ["scopes"]
    assert "payments:admin" in raised.value.details[0].message
    assert not ApiKey.objects.exists()


def test_a_view_that_names_no_scope_refuses_every_key(merchant, caplog):
    api_key, _ = api_key_create(name="all", merchant=merchant, scopes=ALL_SCOPES)

    class Forgotten(APIView):
        pass

    class Request:
        method = "GET"
        path = "/v1/new"
        auth = api_key

    with pytest.raises(PermissionDenied) as raised:
        HasRequiredScope().has_permission(Request(), Forgotten())

    assert raised.value.code == "INSUFFICIENT_SCOPE"
    assert "Forgotten names no known API key scope" in caplog.text


def test_the_schema_names_each_operations_scope_in_its_403(client):
    schema = client.get("/v1/schema", {"format": "json"}).json()
    description = schema["components"]["securitySchemes"]["ApiKeyAuth"]["description"]

    assert all(f"`{scope}`" in description for scope in SCOPES)
    for route, view, method in (p.values for p in KEYED_OPERATIONS):
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
        operation = schema["paths"][path][method]
        scope = required_scope(view(), method.upper())
        assert f"`{scope}` (INSUFFICIENT_SCOPE)" in operation["responses"]["403"]["description"], (path, method)
        assert operation["description"].endswith(f"API key scope: `{scope}`."), (path, method)
