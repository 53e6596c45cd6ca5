"""GET /v1: an index of the API's resources, readable without a key."""

import pytest
from django.test import Client

from ..conftest import client_for
from .helpers import assert_error

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/v1", "/v1/"])
def test_the_api_root_links_to_payments_the_schema_and_the_docs_without_a_key(path):
    response = Client().get(path)

    assert response.status_code == 200, response.content
    assert response.headers["Content-Type"].startswith("application/json")
    links = response.json()["links"]
    assert links == {
        "payments": "http://testserver/v1/payments",
        "refunds": "http://testserver/v1/refunds",
        "settlements": "http://testserver/v1/settlements",
        "schema": "http://testserver/v1/schema",
        "swaggerUi": "http://testserver/v1/schema/swagger",
        "redoc": "http://testserver/v1/schema/redoc",
        "docs": "http://testserver/docs/",
    }


def test_every_link_of_the_index_leads_somewhere(merchant_key):
    client = client_for(merchant_key)  # the payments link answers a key, the others anyone

    for url in Client().get("/v1").json()["links"].values():
        assert client.get(url.removeprefix("http://testserver")).status_code == 200, url


def test_the_index_ignores_an_invalid_key_rather_than_refusing_it():
    response = Client().get("/v1", headers={"Authorization": "Bearer pgi_nonsense"})

    assert response.status_code == 200, response.content


def test_the_index_refuses_query_parameters_and_other_methods():
    assert_error(Client().get("/v1", {"expand": "all"}), 400, "VALIDATION_ERROR", field="expand")
    assert_error(Client().post("/v1", data="{}", content_type="application/json"), 405, "METHOD_NOT_ALLOWED")
