"""Admin sign-in lockout: failures count per username and client address together, and per address
across usernames; the cool-off or a member of staff ends it; behind proxies the client's own
address counts."""

from datetime import timedelta
from io import StringIO

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import Client, RequestFactory
from django.urls import reverse

from pgi.web.login_lockout import client_address

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"
WRONG = "not-the-password"
OFFICE = "198.51.100.10"
ELSEWHERE = "203.0.113.77"
LOGIN_URL = reverse("admin:login")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser("staff", "staff@example.com", PASSWORD)


@pytest.fixture
def colleague(django_user_model):
    return django_user_model.objects.create_superuser("colleague", "colleague@example.com", PASSWORD)


def sign_in(username: str, password: str, *, address: str = OFFICE, client: Client | None = None, **headers):
    """POST the admin login form; the answer and whether a session was opened."""
    client = client or Client()
    response = client.post(LOGIN_URL, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=address, **headers)
    return response.status_code, "_auth_user_id" in client.session


def fail(username: str, times: int, *, address: str = OFFICE, **headers) -> list[int]:
    return [sign_in(username, WRONG, address=address, **headers)[0] for _ in range(times)]


def test_a_wrong_password_is_an_ordinary_form_error_and_the_right_one_signs_in(staff):
    assert sign_in("staff", WRONG) == (200, False)
    assert sign_in("staff", PASSWORD) == (302, True)


def test_thirty_wrong_passwords_lock_the_login_even_for_the_right_password(staff):
    answers = fail("staff", 30)

    assert answers[:4] == [200] * 4
    assert answers[4:] == [429] * 26  # the fifth failure locks
    assert sign_in("staff", PASSWORD) == (429, False)


def test_the_lockout_page_is_the_admin_layout_not_an_error(staff, settings):
    fail("staff", settings.AXES_FAILURE_LIMIT)

    response = Client().post(LOGIN_URL, {"username": "staff", "password": PASSWORD}, REMOTE_ADDR=OFFICE)

    assert response.status_code == 429
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert 'id="login-locked-out"' in html
    assert 'id="site-name"' in html  # the admin's header
    assert "15 minutes" in html


def test_another_user_at_the_same_address_still_signs_in(staff, colleague, settings):
    fail("staff", settings.AXES_FAILURE_LIMIT)

    assert sign_in("colleague", PASSWORD, address=OFFICE) == (302, True)


def test_the_same_user_at_another_address_still_signs_in(staff, settings):
    fail("staff", settings.AXES_FAILURE_LIMIT, address=OFFICE)

    assert sign_in("staff", PASSWORD, address=ELSEWHERE) == (302, True)
    assert sign_in("staff", PASSWORD, address=OFFICE) == (429, False)


def test_an_address_guessing_across_usernames_is_locked_for_every_user(staff, settings):
    settings.PGI_LOGIN_ADDRESS_FAILURE_LIMIT = 8
    # Four tries for each of two names: under the per-username limit of five, but the eighth
    # failure from the address locks it.
    assert fail("alice", 4) + fail("bob", 4) == [200] * 7 + [429]
    assert fail("carol", 1) == [429]

    assert sign_in("staff", PASSWORD, address=OFFICE) == (429, False)
    assert sign_in("staff", PASSWORD, address=ELSEWHERE) == (302, True)


def test_the_cool_off_ends_the_lockout(staff, settings):
    fail("staff", settings.AXES_FAILURE_LIMIT)
    assert sign_in("staff", PASSWORD) == (429, False)

    # The cool-off (15 minutes) passes.
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16))

    assert sign_in("staff", PASSWORD) == (302, True)


def test_attempts_refused_during_the_lockout_do_not_extend_it(staff, settings):
    fail("staff", settings.AXES_FAILURE_LIMIT)
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=10))

    assert sign_in("staff", WRONG) == (429, False)
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=6))

    assert sign_in("staff", PASSWORD) == (302, True)  # 16 minutes after the failure that locked it


def test_a_locked_user_retrying_does_not_lock_out_the_whole_address(staff, colleague, settings):
    fail("staff", settings.AXES_FAILURE_LIMIT)

    refused = fail("staff", settings.PGI_LOGIN_ADDRESS_FAILURE_LIMIT + 5)

    assert set(refused) == {429}
    assert AccessAttempt.objects.get(username="staff").failures_since_start == settings.AXES_FAILURE_LIMIT
    assert sign_in("colleague", PASSWORD) == (302, True)


def test_a_successful_sign_in_forgets_earlier_failures(staff, settings):
    fail("staff", settings.AXES_FAILURE_LIMIT - 1)
    assert sign_in("staff", PASSWORD) == (302, True)

    assert fail("staff", settings.AXES_FAILURE_LIMIT - 1) == [200] * (settings.AXES_FAILURE_LIMIT - 1)


def test_staff_unlock_a_locked_login_in_the_admin(staff, colleague, settings):
    fail("staff", settings.AXES_FAILURE_LIMIT)
    assert sign_in("staff", PASSWORD) == (429, False)
    admin = Client()
    admin.force_login(colleague)
    changelist = reverse("admin:axes_accessattempt_changelist")
    listed = admin.get(changelist, {"q": "staff"})
    assert listed.status_code == 200
    attempt = AccessAttempt.objects.get(username="staff")
    assert [a.pk for a in listed.context["cl"].result_list] == [attempt.pk]

    confirm = {"action": "delete_selected", "_selected_action": [attempt.pk]}
    assert admin.post(changelist, confirm).status_code == 200  # the confirmation page
    response = admin.post(changelist, {**confirm, "post": "yes"})

    assert response.status_code == 302
    assert not AccessAttempt.objects.exists()
    assert sign_in("staff", PASSWORD) == (302, True)


def test_demo_setup_unlocks_the_admin_it_prints_a_password_for(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path  # where it keeps the demo credentials
    call_command("demo_setup", stdout=StringIO())
    fail("admin", settings.AXES_FAILURE_LIMIT)

    out = StringIO()
    call_command("demo_setup", stdout=out)
    password = dict(line.split("=", 1) for line in out.getvalue().splitlines())["PGI_ADMIN_PASSWORD"]

    assert sign_in("admin", password) == (302, True)


def test_authenticate_from_the_shell_needs_no_request(staff):
    assert authenticate(username="staff", password=PASSWORD) == staff
    assert authenticate(username="staff", password=WRONG) is None


class TestBehindAProxy:
    """PGI_PROXY_COUNT proxies append to X-Forwarded-For; entries to their left are the client's word."""

    PROXY = "10.0.0.5"

    @pytest.fixture(autouse=True)
    def one_proxy(self, settings):
        settings.PGI_PROXY_COUNT = 1

    def via_proxy(self, client_sent: str, client_is: str) -> dict:
        forwarded = f"{client_sent}, {client_is}" if client_sent else client_is
        return {"address": self.PROXY, "HTTP_X_FORWARDED_FOR": forwarded}

    def test_failures_count_against_the_client_not_the_proxy(self, staff, settings):
        fail("staff", settings.AXES_FAILURE_LIMIT, **self.via_proxy("", OFFICE))

        assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {OFFICE}
        assert sign_in("staff", PASSWORD, **self.via_proxy("", OFFICE)) == (429, False)
        assert sign_in("staff", PASSWORD, **self.via_proxy("", ELSEWHERE)) == (302, True)

    def test_a_forged_forwarded_for_does_not_escape_the_lockout(self, staff, settings):
        for n in range(settings.AXES_FAILURE_LIMIT):
            sign_in("staff", WRONG, **self.via_proxy(f"192.0.2.{n}", OFFICE))

        assert sign_in("staff", PASSWORD, **self.via_proxy("192.0.2.99", OFFICE)) == (429, False)


def request_from(remote: str, forwarded: str | None = None):
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return RequestFactory().get("/", REMOTE_ADDR=remote, **headers)


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "expected"),
    [
        (0, "203.0.113.1", "192.0.2.1", "203.0.113.1"),  # no proxy: the header is the client's word
        (1, "10.0.0.5", "203.0.113.1", "203.0.113.1"),
        (1, "10.0.0.5", "192.0.2.1, 203.0.113.1", "203.0.113.1"),  # left of it: forged
        (2, "10.0.0.6", "192.0.2.1, 203.0.113.1, 10.0.0.5", "203.0.113.1"),
        (2, "10.0.0.6", "10.0.0.5", "10.0.0.6"),  # fewer entries than proxies: the peer
        (1, "10.0.0.5", None, "10.0.0.5"),
        (1, "10.0.0.5", " , ", "10.0.0.5"),
    ],
)
def test_client_address_counts_proxies_from_the_right(settings, proxies, remote, forwarded, expected):
    settings.PGI_PROXY_COUNT = proxies

    assert client_address(request_from(remote, forwarded)) == expected
