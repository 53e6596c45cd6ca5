"""Reconciliation for finance: runs with their category totals, a run's exceptions (filters, search,
resolving one or many with a note), all exceptions across runs, report upload and download. Reads
through settlements.reconciliation.selectors; resolving and uploading through its services."""

from collections import defaultdict

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from gateways.registry import configured_codes
from pgi.audit.actors import Actor
from pgi.errors import ApplicationError
from settlements.downloads import gateway_report_response
from settlements.reconciliation import selectors as recon
from settlements.reconciliation.models import Category, GatewayReport, Resolution
from settlements.reconciliation.services import (
    reconciliation_day_default,
    reconciliation_exceptions_resolve,
    reconciliation_report_upload,
)

from .. import exports
from ..access import finance_required
from ..forms import ExceptionFilterForm, ReportUploadForm, ResolveForm, RunFilterForm
from ..selectors import reconciliation_days
from .dashboard import utc_today
from .settlements import invalid_filters_response, page_of, query_without

RUNS_PER_PAGE = 30
EXCEPTIONS_PER_PAGE = 50
VIEW_RUNS = "settlements.view_reconciliationrun"
VIEW_EXCEPTIONS = "settlements.view_reconciliationexception"
RESOLVE = "settlements.resolve_reconciliationexception"
EXCEPTION_CATEGORIES = [c for c in Category if c != Category.MATCHED]


def category_counts(run) -> dict[str, int]:
    """The run's count per category over all its currencies (from its prefetched totals)."""
    counts: dict[str, int] = defaultdict(int)
    for by_category in run.totals_by_currency.values():
        for category, total in by_category.items():
            counts[category] += total["count"]
    return counts


def _runs(request):
    form = RunFilterForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        return form, None
    data = form.cleaned_data if form.is_bound else {}
    return form, recon.reconciliation_runs(
        gateway=data.get("gateway") or None, day_from=data.get("day_from"), day_to=data.get("day_to")
    )


@finance_required(VIEW_RUNS)
def run_list(request):
    form, runs = _runs(request)
    page = page_of(Paginator(runs, RUNS_PER_PAGE), request) if runs is not None else None
    rows = [(run, category_counts(run)) for run in page.object_list] if page else []
    context = {
        "form": form,
        "page": page,
        "rows": rows,
        "categories": EXCEPTION_CATEGORIES,
        "filters_query": query_without(request, "page"),
        "nav": "reconciliation",
    }
    return render(request, "finance/run_list.html", context, status=400 if runs is None else 200)


@finance_required(VIEW_RUNS)
def run_list_export(request):
    form, runs = _runs(request)
    if runs is None:
        return invalid_filters_response(form)
    return exports.runs_csv(runs, EXCEPTION_CATEGORIES, category_counts, utc_today())


def _exceptions(request, run=None):
    """(the filter form, the exceptions it selects or None when a filter is invalid). A run's
    exceptions are listed by category (the index on run, category and id gives a page without
    sorting the run's exceptions); across runs, the latest found first (the open-age index)."""
    form = ExceptionFilterForm(request.GET or {"status": "open"}, categories=recon.reconciliation_category_choices())
    if not form.is_valid():
        return form, None
    exceptions = recon.reconciliation_exceptions(run=run, **form.selector_kwargs())
    return form, exceptions.order_by("category", "id") if run is not None else exceptions.order_by("-first_seen_at", "-id")


def _run(run_id: int):
    run = recon.reconciliation_run_get(run_id=run_id)
    if run is None:
        raise Http404("No reconciliation run with this id.")
    return run


def _totals_rows(run) -> list[dict]:
    """The run's totals, per currency and category, with the difference between the sides."""
    rows = []
    for currency, by_category in sorted(run.totals_by_currency.items()):
        for category in Category:
            total = by_category.get(category)
            if total:
                rows.append({
                    "currency": currency, "category": category, "label": category.label, **total,
                    "difference": total["report_amount"] - total["pgi_amount"],
                })
    return rows


class _CountedPaginator(Paginator):
    """A paginator told its total: a run's open exceptions are counted with the run already."""

    def __init__(self, *args, count: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._known_count = count

    @cached_property
    def count(self) -> int:
        return self._known_count if self._known_count is not None else super().count


def _only_open(form) -> bool:
    """The filters select every open exception (the run page's default view)."""
    data = form.cleaned_data
    return (data.get("status") or "open") == "open" and not any(v for k, v in data.items() if k != "status")


def _exceptions_context(request, exceptions, form, count: int | None = None) -> dict:
    paginator = _CountedPaginator(exceptions, EXCEPTIONS_PER_PAGE, count=count) if exceptions is not None else None
    page = page_of(paginator, request) if paginator else None
    return {
        "form": form,
        "page": page,
        "filters_query": query_without(request, "page"),
        "resolve_form": ResolveForm(resolutions=Resolution.choices),
        "may_resolve": request.user.has_perm(RESOLVE),
        "overdue_days": settings.PGI_RECONCILIATION["overdue_days"],
        "back": request.get_full_path(),
        "nav": "reconciliation",
    }


@finance_required(VIEW_RUNS, VIEW_EXCEPTIONS)
def run_detail(request, run_id: int):
    run = _run(run_id)
    form, exceptions = _exceptions(request, run)
    known = run.open_exceptions if exceptions is not None and _only_open(form) else None
    context = {
        "run": run, "totals": _totals_rows(run), "counts": category_counts(run),
        **_exceptions_context(request, exceptions, form, count=known),
    }
    return render(request, "finance/run_detail.html", context, status=400 if exceptions is None else 200)


@finance_required(VIEW_EXCEPTIONS)
def exception_list(request):
    form, exceptions = _exceptions(request)
    context = {"run": None, **_exceptions_context(request, exceptions, form)}
    return render(request, "finance/exception_list.html", context, status=400 if exceptions is None else 200)


@finance_required(VIEW_EXCEPTIONS)
def exception_list_export(request, run_id: int | None = None):
    run = _run(run_id) if run_id is not None else None
    form, exceptions = _exceptions(request, run)
    if exceptions is None:
        return invalid_filters_response(form)
    name = f"reconciliation-{run.gateway}-{run.day.isoformat()}-exceptions" if run else f"reconciliation-exceptions-{utc_today().isoformat()}"
    return exports.exceptions_csv(name, exceptions)


def resolve_notes(outcome) -> str:
    """The parts of a resolve outcome besides the resolved count: " (2 already resolved, left as
    they were; not found: 99999)" or ""."""
    notes = []
    if outcome.already_resolved:
        notes.append(f"{outcome.already_resolved} already resolved, left as they were")
    if outcome.not_found:
        notes.append("not found: " + ", ".join(str(pk) for pk in outcome.not_found))
    return f" ({'; '.join(notes)})" if notes else ""


@require_POST
@finance_required(VIEW_EXCEPTIONS, RESOLVE)
def exceptions_resolve(request):
    """Resolve the ticked exceptions with one resolution and note (the service records who and
    when; already resolved ones stay as they were). Back to the page the form was on."""
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = reverse("finance:exceptions")
    form = ResolveForm(request.POST, resolutions=Resolution.choices)
    ids = [value for value in request.POST.getlist("exception") if value.isdigit()]
    if not ids:
        messages.error(request, "Tick at least one exception to resolve.")
    elif not form.is_valid():
        problems = "; ".join(f"{form.fields[name].label}: {' '.join(errs)}" for name, errs in form.errors.items())
        messages.error(request, f"Nothing resolved. {problems}")
    else:
        try:
            outcome = reconciliation_exceptions_resolve(
                exception_ids=ids, resolution=form.cleaned_data["resolution"], note=form.cleaned_data["note"], user=request.user,
                actor=Actor.of_request(request, via="finance"),
            )
        except ApplicationError as exc:
            messages.error(request, f"Nothing resolved: {exc.message} ({exc.code})")
        else:
            label = dict(Resolution.choices)[form.cleaned_data["resolution"]].lower()
            done = outcome.resolved
            messages.success(request, f"Resolved {done} exception{'s' if done != 1 else ''} as {label}{resolve_notes(outcome)}.")
    return redirect(back)


@finance_required(VIEW_RUNS, "settlements.add_gatewayreport")
def report_upload(request):
    gateways = recon.reconciliation_gateway_choices()
    form = ReportUploadForm(request.POST or None, request.FILES or None, gateways=gateways,
                            initial={"day": reconciliation_day_default()})
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            outcome = reconciliation_report_upload(
                gateway=form.cleaned_data["gateway"], day=form.cleaned_data["day"], name=upload.name,
                content=upload.read(), user=request.user, replace_with_empty=form.cleaned_data["replace_with_empty"],
                actor=Actor.of_request(request, via="finance"),
            )
        except ApplicationError as exc:
            form.add_error("file", f"{exc.message} ({exc.code})")
        else:
            seen = "" if outcome.report_created else " The same file was loaded before: it is counted once."
            messages.success(request, f"Report {upload.name} loaded and {outcome.run.gateway} {outcome.run.day} reconciled.{seen}")
            return redirect("finance:run", run_id=outcome.run.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "finance/report_upload.html", {"form": form, "nav": "reconciliation"}, status=status)


@finance_required(VIEW_RUNS, "settlements.view_gatewayreport")
def report_download(request, report_id: int):
    report = GatewayReport.objects.filter(pk=report_id).first()
    if report is None:
        raise Http404("No such report.")
    return gateway_report_response(report)




RECON_DAYS = 14


def dashboard_reconciliation(today) -> dict:
    """The dashboard's reconciliation panels: each gateway's last RECON_DAYS days (a run's state and
    the exceptions its last pass found, or none) and the open exceptions by age, as a chart (two queries)."""
    import datetime as dt

    from ..charts import Column, Segment, stacked_bars

    days = [today - dt.timedelta(days=back) for back in range(RECON_DAYS - 1, -1, -1)]
    runs = {(r.gateway, r.day): r for r in reconciliation_days(day_from=days[0], day_to=days[-1])}
    gateways = list(configured_codes()) + sorted({gateway for gateway, _ in runs} - set(configured_codes()))
    grid = []
    for gateway in gateways:
        cells = []
        for day in days:
            run = runs.get((gateway, day))
            if run is None:
                state, text = "missing", "–"
            elif run.status == "failed":
                state, text = "overdue", "failed"
            elif run.has_overdue:
                state, text = "overdue", f"{run.exception_count:,}"
            elif run.has_open:
                state, text = "exceptions", f"{run.exception_count:,}"
            elif run.status == "running":
                state, text = "missing", "…"
            else:
                state, text = "matched", "✓"
            cells.append({"day": day, "run": run, "state": state, "text": text})
        grid.append({"gateway": gateway, "cells": cells})
    ages = recon.reconciliation_open_exceptions_by_age()
    chart = stacked_bars(
        label_id="chart-ages",
        title="Open reconciliation exceptions by age",
        description="Open exceptions counted by days since a run first found them; the buckets past the overdue age are red.",
        columns=[
            Column(label=b.label, tooltip=f"{b.label}: {b.count:,} open" + (" (overdue)" if b.overdue else ""),
                   segments=[Segment("overdue" if b.overdue else "age", b.count)])
            for b in ages
        ],
    )
    return {"recon_days": days, "recon_grid": grid, "ages": ages, "ages_chart": chart,
            "open_total": sum(b.count for b in ages), "overdue_days": settings.PGI_RECONCILIATION["overdue_days"]}
