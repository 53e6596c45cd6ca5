"""Headers on every page: a Content-Security-Policy whose inline code runs only with the request's
nonce, nosniff, a referrer policy, no framing; and `Cache-Control: no-store` on every /v1 answer that
can carry payment data, errors included."""

from html.parser import HTMLParser

import pytest
from django.test import Client

from payments.models import Payment
from tests.factories import PaymentFactory

pytestmark = pytest.mark.django_db

PAGES = ["/docs/", "/docs/01-integration-guide/", "/admin/login/", "/v1/schema/swagger", "/v1/schema/redoc"]
STAFF_PAGES = [
    "/admin/",
    "/admin/payments/payment/",
    "/admin/merchants/merchant/add/",
    "/admin/merchants/apikey/",
    "/admin/axes/accessattempt/",
]


def policy_of(response) -> dict[str, list[str]]:
    header = response.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.request['PATH_INFO']}"
    return {name: values for name, *values in (d.split() for d in header.split(";") if d.strip())}


class InlineCode(HTMLParser):
    """Inline <script> and <style> elements (no src) with their nonce, and style attributes."""

    def __init__(self):
        super().__init__()
        self.inline: list[tuple[str, str | None]] = []
        self.style_attributes = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "style" or (tag == "script" and not attrs.get("src")):
            self.inline.append((tag, attrs.get("nonce")))
        if "style" in attrs:
            self.style_attributes += 1


def inline_code(response) -> InlineCode:
    parser = InlineCode()
    parser.feed(response.content.decode())
    return parser


def assert_strict(policy: dict) -> None:
    assert policy["default-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    for name, values in policy.items():
        assert not [v for v in values if v.startswith(("http:", "https:", "*")) or "://" in v], (name, values)
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]


@pytest.fixture
def staff_client(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.mark.parametrize("path", PAGES)
def test_public_pages_send_a_strict_policy_and_nonce_their_inline_code(client, path):
    response = client.get(path)

    assert response.status_code == 200
    policy = policy_of(response)
    assert_strict(policy)
    code = inline_code(response)
    assert code.style_attributes == 0
    nonces = {value[len("'nonce-"):-1] for value in policy["script-src"] if value.startswith("'nonce-")}
    for tag, nonce in code.inline:
        if tag == "script" or path != "/v1/schema/redoc":
            assert nonce in nonces, (path, tag)


@pytest.mark.parametrize("path", STAFF_PAGES)
def test_admin_pages_send_the_policy_and_nonce_their_inline_code(staff_client, path):
    PaymentFactory()
    response = staff_client.get(path)

    assert response.status_code == 200
    policy = policy_of(response)
    assert_strict(policy)
    code = inline_code(response)
    assert code.style_attributes == 0
    for tag, nonce in code.inline:
        assert nonce and f"'nonce-{nonce}'" in policy[f"{tag}-src"], (path, tag)


def test_each_response_gets_a_fresh_nonce(client):
    first = policy_of(client.get("/docs/"))["style-src"]
    second = policy_of(client.get("/docs/"))["style-src"]

    assert first != second


def test_redoc_alone_may_use_inline_styles_and_blob_workers(client):
    redoc = policy_of(client.get("/v1/schema/redoc"))
    swagger = policy_of(client.get("/v1/schema/swagger"))

    assert redoc["style-src"] == ["'self'", "'unsafe-inline'"]
    assert redoc["worker-src"] == ["'self'", "blob:"]
    assert "'unsafe-inline'" not in swagger["style-src"]
    assert "worker-src" not in swagger


@pytest.mark.parametrize("path", ["/docs/", "/admin/login/", "/health", "/v1/payments", "/v1/schema"])
def test_every_answer_says_nosniff_same_origin_referrer_and_opener_and_no_framing(client, path, kafka_bootstrap):
    # kafka_bootstrap: /health asks the broker, and without one waits out the client's timeout.
    response = client.get(path)

    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_api_answers_are_never_stored(api, merchant):
    payment = PaymentFactory(merchant=merchant)
    answers = {
        "created": api.post(
            "/v1/payments", {"amount": 50.00, "currency": "USD", "fromAccount": "account123"}, format="json"
        ),
        "read": api.get(f"/v1/payments/{payment.id}"),
        "list": api.get("/v1/payments"),
        "status": api.get(f"/v1/payments/{payment.id}/status"),
        "validation error": api.post("/v1/payments", {"amount": "x"}, format="json"),
        "not found": api.get("/v1/payments/pay_unknown"),
        "no such url": api.get("/v1/nothing-here"),
        "method not allowed": api.delete("/v1/payments"),
        "unauthenticated": Client().get("/v1/payments"),
    }

    assert answers["created"].status_code == 201
    assert Payment.objects.count() == 2
    assert {name: r["Cache-Control"] for name, r in answers.items()} == {name: "no-store" for name in answers}


@pytest.mark.parametrize("path", ["/v1/schema", "/v1/schema/swagger", "/v1/schema/redoc", "/docs/"])
def test_the_api_reference_and_docs_may_be_cached(client, path):
    response = client.get(path)

    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")


@pytest.mark.urls("tests.api.urls_with_plain_django_view")
def test_an_unexpected_error_under_v1_is_not_stored_either():
    response = Client(raise_request_exception=False).get("/v1/plain/raises")

    assert response.status_code == 500
    assert response["Cache-Control"] == "no-store"
