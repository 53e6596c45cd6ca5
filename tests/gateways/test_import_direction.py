"""Imports go one way: pgi.* ← gateways ← payments ← refunds ← settlements.

An app may import the ones left of it, never one right of it: gateways stores notifications and
the app owning their operation applies them (gateways.handlers); pgi's admin takes what the apps
register (pgi.admin_site pages, pgi.merchants.admin inlines).
"""

import ast
from pathlib import Path

import pytest
from django.contrib import admin

from pgi.merchants.models import Merchant

ROOT = Path(__file__).resolve().parents[2]
DOMAIN_APPS = ("gateways", "payments", "refunds", "settlements")


def imported_modules(source: str) -> set[str]:
    """The absolute module names a module's source imports, anywhere in it (in functions too)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def forbidden_imports(package: str, forbidden: tuple[str, ...], root: Path = ROOT) -> dict[str, list[str]]:
    """{module path: the forbidden modules it imports} for every module under `package`."""
    found = {}
    modules = sorted((root / package).rglob("*.py"))
    assert modules, f"no module under {package}/"
    for path in modules:
        bad = sorted(
            name for name in imported_modules(path.read_text())
            if any(name == app or name.startswith(f"{app}.") for app in forbidden)
        )
        if bad:
            found[str(path.relative_to(root))] = bad
    return found


def test_the_walk_finds_imports_in_every_form():
    source = (
        "import payments\nimport refunds.models as r\nfrom settlements.services import x\n"
        "def later():\n    from payments.services import y\n"
        "from . import payments_like\nfrom .payments import z\nimport paymentsx\n"
    )

    assert imported_modules(source) == {"payments", "refunds.models", "settlements.services", "payments.services", "paymentsx"}


def test_gateways_imports_no_payments_refunds_or_settlements():
    assert forbidden_imports("gateways", ("payments", "refunds", "settlements")) == {}


def test_payments_imports_no_refunds_or_settlements():
    assert forbidden_imports("payments", ("refunds", "settlements")) == {}


def test_refunds_imports_no_settlements():
    # Settlement reads payments and refunds; they never know it (their API rows take the settlement
    # id from an annotation settlements registers: payments.selectors, refunds.selectors).
    assert forbidden_imports("refunds", ("settlements",)) == {}


def test_pgi_imports_no_domain_app_and_no_gateway():
    # pgi/merchants, pgi/api, pgi/web and pgi/*.py: URLs and settings name the apps as strings only.
    # pgi/events is the one listener above them all (DESIGN: it listens to the domain apps' signals).
    found = forbidden_imports("pgi", (*DOMAIN_APPS, "monitoring"))
    assert {path: names for path, names in found.items() if not path.startswith("pgi/events/")} == {}


def test_the_domain_apps_import_no_events_no_webhooks_and_no_monitoring():
    # They send signals; pgi/events receives them, pgi/webhooks reads its outbox, and monitoring counts
    # their outcomes and reads their tables for /metrics. A domain app importing one would turn that round.
    listeners = ("pgi.events", "pgi.webhooks", "monitoring")
    apps = ("gateways", "payments", "refunds", "settlements")
    assert {app: forbidden_imports(app, listeners) for app in apps} == dict.fromkeys(apps, {})


def test_the_domain_apps_import_no_payment_requests():
    # payment_requests is an interface above payments (a Kafka consumer, as the API is an HTTP one).
    apps = ("gateways", "payments", "refunds", "settlements")
    assert {app: forbidden_imports(app, ("payment_requests",)) for app in apps} == dict.fromkeys(apps, {})


@pytest.mark.parametrize("app", ["gateways", "payments"])
def test_a_domain_import_under_a_package_is_reported(tmp_path, app):
    package = tmp_path / "pkg" / "sub"
    package.mkdir(parents=True)
    (package / "mod.py").write_text(f"def f():\n    from {app}.models import Thing\n")

    assert forbidden_imports("pkg", (app,), root=tmp_path) == {"pkg/sub/mod.py": [f"{app}.models"]}


def test_the_merchant_page_shows_currencies_then_gateway_routes_then_keys():
    # gateways adds its route inline from its own admin module; staff see the same page as before.
    inlines = [inline.__name__ for inline in admin.site.get_model_admin(Merchant).inlines]

    assert inlines == ["MerchantCurrencyInline", "GatewayRouteInline", "ApiKeyInline"]
