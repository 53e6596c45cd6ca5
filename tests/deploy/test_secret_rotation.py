"""Rotating DJANGO_SECRET_KEY without signing everyone out (docs/04-operations.md, "Rotating every
secret"): the previous key in DJANGO_SECRET_KEY_FALLBACKS keeps staff sessions valid while it is
there, and a session used meanwhile moves to the new key."""

import runpy

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from .manifests import ROOT

OLD, NEW = "old-" + "k" * 60, "new-" + "n" * 60


def settings_under(monkeypatch, **environment) -> dict:
    """pgi/settings.py as a process with this environment reads it."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "pgi" / "settings.py"))


def test_the_fallback_keys_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("DJANGO_SECRET_KEY_FALLBACKS", raising=False)
    assert settings_under(monkeypatch, DJANGO_SECRET_KEY=NEW)["SECRET_KEY_FALLBACKS"] == []
    read = settings_under(monkeypatch, DJANGO_SECRET_KEY=NEW, DJANGO_SECRET_KEY_FALLBACKS=f"{OLD},older")
    assert (read["SECRET_KEY"], read["SECRET_KEY_FALLBACKS"]) == (NEW, [OLD, "older"])


@pytest.mark.django_db
def test_staff_sessions_used_while_the_old_key_is_a_fallback_move_to_the_new_key():
    get_user_model().objects.create_user("ops", password="a-long-password-1", is_staff=True, is_superuser=True)
    during, after = Client(), Client()
    with override_settings(SECRET_KEY=OLD, SECRET_KEY_FALLBACKS=[]):
        for client in (during, after):
            assert client.login(username="ops", password="a-long-password-1")
            assert client.get("/admin/").status_code == 200

    with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[OLD]):
        assert during.get("/admin/").status_code == 200  # still signed in, now under the new key
    with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[]):
        assert during.get("/admin/").status_code == 200
        assert after.get("/admin/").status_code == 302  # not seen during the overlap: signed out
