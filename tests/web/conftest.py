import pytest


@pytest.fixture(autouse=True)
def fresh_health_checks():
    """/health keeps its last results for a few seconds in the process: no test sees another's."""
    from pgi.web.health import checks_memo

    checks_memo.clear()
    yield
    checks_memo.clear()
