import pytest


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    """Sign-in tests hash many passwords; the production hasher is slow on purpose."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_health_checks():
    """/health keeps its last results for a few seconds in the process: no test sees another's."""
    from pgi.web.health import checks_memo

    checks_memo.clear()
    yield
    checks_memo.clear()
