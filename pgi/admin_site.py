"""The admin as bank staff use it: payments, merchants and gateways first, engineering last.

PgiAdminSite replaces Django's default site (PgiAdminConfig in INSTALLED_APPS). It groups the
registered models into sections instead of listing apps alphabetically (each user sees the models
their permissions reach: pgi/staff/roles.py), and carries pages that are no model's list (the
gateway status) and the panels of its index page (the day's figures). Apps register those from
their admin modules, so this module imports no domain app.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest
from django.urls import path, reverse

ENGINEERING = "engineering"


@dataclass(frozen=True)
class Section:
    key: str
    name: str
    # (app_label, model_name) in the order shown; model_name None: every model of that app.
    members: tuple[tuple[str, str | None], ...]


# The people who use the admin look for payments first. Refunds and settlements have their places
# before their apps exist. Every model not named here is engineering's.
SECTIONS = (
    Section("payments", "Payments and refunds", (("payments", "payment"), ("refunds", None))),
    Section("merchants", "Merchants", (("merchants", "merchant"), ("merchants", "apikey"), ("webhooks", None))),
    Section("gateways", "Gateways", (("gateways", "gatewaynotification"),)),
    Section("settlements", "Settlement and reconciliation", (("settlements", None),)),
    # Security's: who may do what, and what they did.
    Section("staff", "Staff and audit", (("auth", "user"), ("auth", "group"), ("audit", None), ("axes", None))),
)


@dataclass(frozen=True)
class Page:
    """An admin page that is no model's list, shown in its section before the section's models."""

    route: str
    view: Callable
    name: str
    title: str
    section: str
    visible: Callable[[HttpRequest], bool]


@dataclass(frozen=True)
class Panel:
    """A part of the index page: `context(request)` fills `template`."""

    template: str
    context: Callable[[HttpRequest], dict]
    visible: Callable[[HttpRequest], bool]


class PgiAdminSite(admin.AdminSite):
    site_header = "PGI administration"
    site_title = "PGI admin"
    index_title = "Payment Gateway Integration"

    def __init__(self, name="admin"):
        super().__init__(name)
        self._pages: list[Page] = []
        self._panels: list[Panel] = []

    def register(self, model_or_iterable, admin_class=None, **options):
        """Every model admin records its add, change and delete in the audit trail (pgi.audit)."""
        from pgi.audit.admin_hooks import audited

        models = [model_or_iterable] if isinstance(model_or_iterable, type) else list(model_or_iterable)
        for model in models:
            super().register(model, audited(model, admin_class or admin.ModelAdmin), **options)

    def register_page(self, page: Page) -> None:
        self._pages.append(page)

    def register_panel(self, panel: Panel) -> None:
        self._panels.append(panel)

    def get_urls(self):
        pages = [path(page.route, self.admin_view(page.view), name=page.name) for page in self._pages]
        return [*pages, *super().get_urls()]

    def get_app_list(self, request, app_label=None):
        """The sections, in their order, for the index and the navigation sidebar. One app's own
        page (/admin/<app_label>/) keeps Django's list of that app's models."""
        if app_label is not None:
            return super().get_app_list(request, app_label)
        models = {
            (entry["model"]._meta.app_label, entry["model"]._meta.model_name): entry
            for app in self._build_app_dict(request).values()
            for entry in app["models"]
        }
        sections = []
        for section in SECTIONS:
            pages = [page for page in self._pages if page.section == section.key and page.visible(request)]
            entries = [self._page_entry(page) for page in pages]
            for app, model in section.members:
                picked = sorted(
                    (key for key in models if key[0] == app and (model is None or key[1] == model)),
                    key=lambda key: models[key]["name"],
                )
                entries += [models.pop(key) for key in picked]
            if entries:
                sections.append(self._section(section.key, section.name, entries))
        # Idempotency records, periodic-task schedules, the outbox, the simulator's ledger: what
        # engineers look at when something is wrong. No staff role holds their permissions
        # (pgi/staff/roles.py): listed, like every model here, to whoever holds one.
        if models:
            sections.append(self._section(ENGINEERING, "Engineering", sorted(models.values(), key=lambda e: e["name"])))
        return sections

    def index(self, request, extra_context=None):
        panels = [{"template": p.template, **p.context(request)} for p in self._panels if p.visible(request)]
        return super().index(request, {"panels": panels, **(extra_context or {})})

    def _page_entry(self, page: Page) -> dict:
        return {
            "name": page.title,
            "object_name": page.name,
            "admin_url": reverse(f"{self.name}:{page.name}", current_app=self.name),
            "add_url": None,
            "view_only": True,
            "perms": {"view": True},
        }

    def _section(self, key: str, name: str, entries: list[dict]) -> dict:
        # The caption links to the section's first list; the sidebar marks the section whose list
        # holds the current page.
        url = entries[0]["admin_url"] or reverse(f"{self.name}:index", current_app=self.name)
        return {"name": name, "app_label": key, "app_url": url, "has_module_perms": True, "models": entries}


class PgiAdminConfig(AdminConfig):
    default_site = "pgi.admin_site.PgiAdminSite"
