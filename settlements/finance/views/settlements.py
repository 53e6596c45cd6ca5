"""Settlement batches: the list with its filters, one batch with its lines and payout files, and
their downloads (the same files and statement as the admin serves: settlements.downloads)."""

from django.core.paginator import Paginator
from django.db.models.functions import Length
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode

from pgi.admin_masking import account_for, may_see_full_accounts
from pgi.ids import is_id
from pgi.staff.roles import VIEW_FULL_ACCOUNT
from settlements.downloads import payout_file_response, statement_csv_response
from settlements.models import SETTLEMENT_ID_PREFIX, SettlementBatch
from settlements.selectors import payout_file_get, settlement_lines

from .. import exports
from ..access import finance_required
from ..forms import BatchFilterForm
from ..selectors import BatchFilters, batch_status_history, finance_batch_list
from .dashboard import utc_today

BATCHES_PER_PAGE = 50
LINES_PER_PAGE = 50
VIEW_BATCHES = "settlements.view_settlementbatch"


def _filtered(request):
    """(the form, the batches it selects or None when a filter is invalid)."""
    form = BatchFilterForm(request.GET or None)
    if not form.is_bound:
        return form, finance_batch_list(filters=BatchFilters())
    if not form.is_valid():
        return form, None
    return form, finance_batch_list(filters=form.filters())


def query_without(request, *names: str) -> str:
    """The request's query string without `names` (the page), for links that keep the filters."""
    params = [(key, value) for key, values in request.GET.lists() if key not in names for value in values]
    return urlencode(params)


def page_of(paginator, request):
    """The page `?page=` names: a number past the last is the last page (Django's get_page); one
    that is not a whole number, or below 1, is the first page."""
    value = request.GET.get("page", "")
    number = int(value) if value.strip().isdigit() else 1
    return paginator.get_page(max(number, 1))


def invalid_filters_response(form) -> HttpResponse:
    """An export's answer to bad filters: 400, plain text, naming each wrong field and why."""
    problems = "\n".join(
        f"{name}: {' '.join(errors)}" if name != "__all__" else " ".join(errors) for name, errors in form.errors.items()
    )
    return HttpResponse(f"Invalid filters.\n{problems}\n", status=400, content_type="text/plain; charset=utf-8")


@finance_required(VIEW_BATCHES)
def batch_list(request):
    form, batches = _filtered(request)
    page = None
    if batches is not None:
        page = page_of(Paginator(batches, BATCHES_PER_PAGE), request)
    context = {
        "form": form,
        "page": page,
        "filters_query": query_without(request, "page"),
        "nav": "settlements",
    }
    return render(request, "finance/batch_list.html", context, status=400 if batches is None else 200)


@finance_required(VIEW_BATCHES)
def batch_list_export(request):
    form, batches = _filtered(request)
    if batches is None:
        return invalid_filters_response(form)
    return exports.batches_csv(batches, utc_today())


def _batch(batch_id: str) -> SettlementBatch:
    batch = None
    if is_id(batch_id, SETTLEMENT_ID_PREFIX):
        batch = SettlementBatch.objects.select_related("merchant").filter(pk=batch_id).first()
    if batch is None:
        raise Http404("No settlement batch with this id.")
    return batch


def _lines_page(batch: SettlementBatch, request) -> dict:
    """A page of the batch's lines by line id (keyset: a deep page costs what the first does).
    `?after=<id>` is the page after that line, `?before=<id>` the page before it, `?last=1` the end."""
    lines = settlement_lines(batch=batch)
    after, before = request.GET.get("after", ""), request.GET.get("before", "")
    if before.isdigit():
        rows = list(lines.filter(id__lt=int(before)).order_by("-id")[: LINES_PER_PAGE + 1])
        has_prev, has_next = len(rows) > LINES_PER_PAGE, True
        rows = rows[:LINES_PER_PAGE][::-1]
    elif request.GET.get("last"):
        rows = list(lines.order_by("-id")[: LINES_PER_PAGE + 1])
        has_prev, has_next = len(rows) > LINES_PER_PAGE, False
        rows = rows[:LINES_PER_PAGE][::-1]
    else:
        if after.isdigit():
            lines = lines.filter(id__gt=int(after))
        rows = list(lines[: LINES_PER_PAGE + 1])
        has_prev, has_next = after.isdigit(), len(rows) > LINES_PER_PAGE
        rows = rows[:LINES_PER_PAGE]
    return {
        "lines": rows,
        "prev_query": f"before={rows[0].id}" if rows and has_prev else "",
        "next_query": f"after={rows[-1].id}" if rows and has_next else "",
        "is_first_page": not has_prev,
        "is_last_page": not has_next,
    }


@finance_required(VIEW_BATCHES, "settlements.view_settlementline")
def batch_detail(request, batch_id: str):
    batch = _batch(batch_id)
    files = batch.payout_files.only("kind", "name", "sha256", "created_at", "batch_id").annotate(size=Length("content"))
    context = {
        "batch": batch,
        # Whole for Finance; masked (and the files, which hold it, not offered) for others.
        "payee_iban": account_for(request.user, batch.payee_iban) if batch.payee_iban else "",
        "may_download_files": may_see_full_accounts(request.user),
        "files": list(files.order_by("kind")),
        "history": list(batch_status_history(batch=batch)),
        "lines_total": batch.payment_count + batch.refund_count,
        **_lines_page(batch, request),
        "nav": "settlements",
        "back": reverse("finance:batches"),
    }
    return render(request, "finance/batch_detail.html", context)


@finance_required(VIEW_BATCHES, "settlements.view_settlementline")
def batch_lines_export(request, batch_id: str):
    return statement_csv_response(_batch(batch_id))


@finance_required(VIEW_BATCHES, "settlements.view_payoutfile", VIEW_FULL_ACCOUNT)
def payout_file(request, batch_id: str, kind: str):
    file = payout_file_get(batch_id=_batch(batch_id).pk, kind=kind)
    if file is None:
        raise Http404("No such payout file.")
    return payout_file_response(file)
