"""PGI_HTTPS=true, the production switch: HTTPS only behind a TLS-terminating proxy, with HSTS and
secure cookies, `/health` still over plain HTTP for the platform's probe, and `check --deploy`
clean. The settings are read in a fresh process with the environment, as a deployment reads them."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
TRANSPORT_SETTINGS = [
    "SECURE_SSL_REDIRECT",
    "SECURE_REDIRECT_EXEMPT",
    "SECURE_PROXY_SSL_HEADER",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "PGI_PROXY_COUNT",
]
DEPLOY_WARNINGS = ["security.W004", "security.W008", "security.W012", "security.W016"]


def production_env(**overrides: str) -> dict:
    """The environment of a deployment: a real secret key, DEBUG off, plus `overrides`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PGI_HSTS", "PGI_PROXY", "PGI_HTTPS"))}
    env.update(DJANGO_SECRET_KEY=secrets.token_urlsafe(50), DJANGO_DEBUG="false", DJANGO_SETTINGS_MODULE="pgi.settings")
    env.update(overrides)
    return env


def settings_under(**env: str) -> dict:
    code = (
        "import json; from django.conf import settings; "
        f"print(json.dumps({{name: getattr(settings, name, None) for name in {TRANSPORT_SETTINGS!r}}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT, env=production_env(**env), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def check_deploy(**env: str) -> subprocess.CompletedProcess:
    """Django's own security checks only (`--tag security`): PGI's deploy checks of other settings,
    such as gateway webhook secrets, have their own tests."""
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--tag", "security", "--fail-level", "WARNING"],
        cwd=ROOT, env=production_env(**env), capture_output=True, text=True, timeout=120,
    )


@pytest.fixture(scope="module")
def https_settings() -> dict:
    return settings_under(PGI_HTTPS="true")


@pytest.fixture
def https_on(settings, https_settings):
    """This process configured as PGI_HTTPS=true configures a deployment."""
    for name, value in https_settings.items():
        setattr(settings, name, tuple(value) if name == "SECURE_PROXY_SSL_HEADER" and value else value)


def test_check_deploy_is_clean_with_the_https_switch():
    result = check_deploy(PGI_HTTPS="true")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_names_every_transport_warning_without_the_switch():
    result = check_deploy()

    assert result.returncode != 0
    for warning in DEPLOY_WARNINGS:
        assert warning in result.stderr + result.stdout


def test_the_switch_turns_on_redirect_hsts_secure_cookies_and_the_proxy_header(https_settings):
    assert https_settings == {
        "SECURE_SSL_REDIRECT": True,
        "SECURE_REDIRECT_EXEMPT": ["^health$"],
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "PGI_PROXY_COUNT": 1,
    }


def test_without_the_switch_none_of_it_is_on():
    values = settings_under()

    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SECURE_HSTS_SECONDS"] == 0
    assert values["SESSION_COOKIE_SECURE"] is values["CSRF_COOKIE_SECURE"] is False
    assert values["SECURE_PROXY_SSL_HEADER"] is None


def test_hsts_max_age_and_flags_are_configurable():
    values = settings_under(PGI_HTTPS="true", PGI_HSTS_SECONDS="300", PGI_HSTS_INCLUDE_SUBDOMAINS="false", PGI_HSTS_PRELOAD="false")

    assert (values["SECURE_HSTS_SECONDS"], values["SECURE_HSTS_INCLUDE_SUBDOMAINS"], values["SECURE_HSTS_PRELOAD"]) == (300, False, False)


def test_without_a_proxy_the_forwarded_proto_header_is_not_believed():
    values = settings_under(PGI_HTTPS="true", PGI_PROXY_COUNT="0")

    assert values["SECURE_PROXY_SSL_HEADER"] is None
    assert values["SECURE_SSL_REDIRECT"] is True


@pytest.mark.parametrize("path", ["/admin/login/", "/docs/", "/v1/payments"])
def test_plain_http_is_redirected_to_https(https_on, path):
    response = Client().get(path)

    assert response.status_code == 301
    assert response["Location"] == f"https://testserver{path}"


def test_health_answers_over_plain_http_for_the_platform_probe(https_on, kafka_bootstrap):
    response = Client().get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_a_request_the_proxy_forwarded_as_https_is_served_with_hsts(https_on):
    response = Client().get("/docs/", HTTP_X_FORWARDED_PROTO="https")

    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


def test_cookies_are_secure_and_the_session_cookie_is_http_only(https_on, admin_user):
    client = Client()
    login = client.get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")
    assert login.cookies["csrftoken"]["secure"] is True

    response = client.post(
        "/admin/login/",
        {"username": "admin", "password": "password", "next": "/admin/"},
        HTTP_X_FORWARDED_PROTO="https",
    )

    assert response.status_code == 302
    session = response.cookies["sessionid"]
    assert session["secure"] is True
    assert session["httponly"] is True


def test_check_deploy_refuses_the_secret_key_written_in_the_source():
    env = production_env(PGI_HTTPS="true")
    del env["DJANGO_SECRET_KEY"]

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--tag", "security"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )

    assert result.returncode != 0
    assert "pgi.E020" in result.stderr
