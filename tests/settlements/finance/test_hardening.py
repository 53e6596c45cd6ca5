"""The finance UI refuses what it cannot take well: uploads too large or empty over a real report,
resolving ids that exist not, bad export filters and pages, and names what it serves safely."""

import pytest
from django.urls import reverse

from settlements.reconciliation.models import Category, ReconciliationException, Resolution

from .test_reconciliation_pages import run, run_url  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def test_resolving_unknown_ids_reports_them_as_not_found(finance, run):  # noqa: F811
    missing = list(ReconciliationException.objects.filter(category=Category.MISSING_AT_GATEWAY).values_list("pk", flat=True))

    finance.post(
        reverse("finance:exceptions-resolve"),
        {"exception": [*missing, 99999], "resolution": Resolution.ACCEPTED, "note": "checked", "next": run_url(run)},
    )

    page = finance.get(run_url(run)).content.decode()
    assert "Resolved 2 exceptions as accepted (not found: 99999)." in page
    assert "already resolved" not in page
