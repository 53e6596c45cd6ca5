"""Messages: stores built only when a request adds or reads one (pgi/web/messages.py), and a
message still reaches the next page, from the cookie or the session, as with Django's storage."""

import pytest
from django.contrib import messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.db import SessionStore
from django.http import HttpResponse
from django.test import RequestFactory

from pgi.web.messages import LazyFallbackStorage

pytestmark = pytest.mark.django_db


def request_with(cookies: dict | None = None, session_key: str | None = None):
    request = RequestFactory().get("/admin/")
    request.COOKIES.update(cookies or {})
    request.session = SessionStore(session_key)
    return request


def test_an_api_request_builds_no_message_store(client):
    response = client.get("/v1/payments")  # 401: no key; the message middleware ran all the same

    storage = response.wsgi_request._messages
    assert isinstance(storage, LazyFallbackStorage) and "storages" not in vars(storage)


def test_a_page_that_neither_adds_nor_reads_leaves_the_response_alone():
    request = request_with({"messages": "stale-value"})
    storage = request._messages = LazyFallbackStorage(request)
    response = HttpResponse()

    assert storage.update(response) is None
    assert "messages" not in response.cookies and "storages" not in vars(storage)


@pytest.mark.parametrize("count, text", [(1, "Saved."), (40, "x" * 200)])  # 40 long ones overflow the cookie
def test_a_message_reaches_the_next_page_as_with_djangos_storage(count, text):
    outcomes = []
    for storage_class in (FallbackStorage, LazyFallbackStorage):
        first = request_with()
        first._messages = storage_class(first)
        for n in range(count):
            messages.success(first, f"{text} {n}")
        response = HttpResponse()
        first._messages.update(response)
        first.session.save()
        cookie = response.cookies["messages"].value if "messages" in response.cookies else None

        second = request_with({"messages": cookie} if cookie else {}, first.session.session_key)
        second._messages = storage_class(second)
        outcomes.append([str(m) for m in messages.get_messages(second)])
        second._messages.update(HttpResponse())

    assert outcomes[0] == outcomes[1] == [f"{text} {n}" for n in range(count)]


def test_the_level_is_set_on_the_lazy_storage_itself():
    request = request_with()
    request._messages = LazyFallbackStorage(request)

    messages.set_level(request, messages.WARNING)
    messages.info(request, "below the level")
    messages.warning(request, "at the level")

    assert [str(m) for m in messages.get_messages(request)] == ["at the level"]
