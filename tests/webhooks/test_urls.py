"""Only http(s) URLs resolving to public addresses are accepted (unless private URLs are allowed,
as in the sandbox), at registration and again when connecting."""

import socket

import pytest

from pgi.errors import ValidationFailed
from pgi.webhooks import net
from pgi.webhooks.models import WebhookDelivery
from pgi.webhooks.net import UnsafeUrl, address_is_public, post, url_check
from pgi.webhooks.services import deliveries_fan_out, deliveries_send_due, endpoint_create
from tests.events.conftest import processed

REFUSED = [
    "http://127.0.0.1/hooks",
    "http://127.1.2.3:8080/hooks",
    "http://10.1.2.3/hooks",
    "http://172.16.0.1/hooks",
    "http://192.168.1.10/hooks",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/hooks",
    "http://0.0.0.0/hooks",
    "http://[::1]/hooks",
    "http://[fe80::1]/hooks",
    "http://[fc00::1]/hooks",
    "http://[::ffff:127.0.0.1]/hooks",
    "http://224.0.0.1/hooks",
    "http://localhost:8000/hooks",
]


@pytest.mark.parametrize("url", REFUSED)
def test_non_public_addresses_are_refused(url, refuse_private):
    with pytest.raises(UnsafeUrl):
        url_check(url)


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "file:///etc/passwd", "gopher://example.com/", "javascript:alert(1)", "example.com/hooks",
     "http:///hooks", "https://user:pass@example.com/hooks", "http://example.com:99999/"],
)
def test_other_schemes_and_malformed_urls_are_refused_even_when_private_urls_are_allowed(url, allow_private):
    with pytest.raises(UnsafeUrl):
        url_check(url)


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "8.8.8.8"])
def test_public_addresses_pass(address):
    assert address_is_public(address)


def test_a_name_is_checked_by_every_address_it_resolves_to(monkeypatch, refuse_private):
    def two_addresses(host, port, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port)),
        ]

    monkeypatch.setattr(net.socket, "getaddrinfo", two_addresses)
    with pytest.raises(UnsafeUrl, match="10.0.0.5"):
        url_check("https://hooks.example.com/pgi")


def test_a_public_name_is_accepted(monkeypatch, refuse_private):
    monkeypatch.setattr(
        net.socket, "getaddrinfo", lambda host, port, **kw: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]
    )
    url_check("https://hooks.example.com/pgi")


def test_loopback_is_accepted_when_private_urls_are_allowed(allow_private):
    url_check("http://127.0.0.1:8000/hooks")
    url_check("http://localhost:8000/hooks")


@pytest.mark.django_db
def test_registering_a_private_url_is_a_validation_error(merchant, refuse_private):
    with pytest.raises(ValidationFailed) as caught:
        endpoint_create(merchant=merchant, url="http://169.254.169.254/", event_types=["*"])

    assert caught.value.details[0].field == "url"


def test_the_connection_refuses_an_address_that_became_private(receiver, settings):
    # Registered while allowed (or resolving elsewhere); the check at connection time still refuses it.
    settings.PGI_WEBHOOKS = {**settings.PGI_WEBHOOKS, "allow_private_urls": False}

    result = post(receiver.url, body=b"{}", headers={"Content-Type": "application/json"})

    assert result.status is None and "non-public" in result.error
    assert receiver.received == []


@pytest.mark.django_db
def test_a_delivery_to_an_url_that_became_private_is_a_failed_attempt(principal, merchant, endpoint_for, receiver, settings):
    endpoint_for(merchant, ["PAYMENT_PROCESSED"])
    processed(principal)
    deliveries_fan_out()
    settings.PGI_WEBHOOKS = {**settings.PGI_WEBHOOKS, "allow_private_urls": False}

    deliveries_send_due()

    attempt = WebhookDelivery.objects.get().attempt_rows.get()
    assert attempt.response_status is None and "non-public" in attempt.error
    assert receiver.received == []


def test_an_https_receiver_with_an_untrusted_certificate_gets_nothing(receiver):
    # A self-signed certificate for 127.0.0.1 (tests/webhooks/untrusted-localhost.*, test-only): the
    # TLS handshake fails, so no body is sent and the attempt records why.
    import ssl
    from pathlib import Path

    here = Path(__file__).parent
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(here / "untrusted-localhost.pem", here / "untrusted-localhost.key")
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)

    result = post(receiver.url.replace("http://", "https://"), body=b"{}", headers={})

    assert result.status is None and "CERTIFICATE_VERIFY_FAILED" in result.error
    assert receiver.received == []


@pytest.mark.parametrize(
    "url",
    [" http://93.184.215.14/hooks", "http://93.184.215.14/hooks ", "\thttp://93.184.215.14/hooks",
     "http://93.184.215.14/ho oks", "http://93.184.215.14/hooks\n", "http://93.184.215.14:0/hooks"],
)
def test_whitespace_control_characters_and_port_zero_are_refused_even_when_private_urls_are_allowed(url, allow_private):
    with pytest.raises(UnsafeUrl):
        url_check(url)


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
        "2002:0a00:0001::1",  # 6to4 of 10.0.0.1
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo, its client 192.0.2.45
    ],
)
def test_ipv6_addresses_carrying_a_private_ipv4_address_are_not_public(address):
    assert not address_is_public(address)


def test_ipv6_addresses_carrying_a_public_ipv4_address_are_public():
    assert address_is_public("64:ff9b::808:808") and address_is_public("2002:808:808::1")
