import math

from axes.helpers import get_client_username
from django.conf import settings
from django.contrib import admin
from django.http import Http404, JsonResponse
from django.shortcuts import render

from .docs import base_url_of, doc_page, doc_pages
from .health import checks_memo, may_see_health_details, outbox_relay_detail, ready_memo


def health(request):
    """200 `{"status": "ok"}` when every backing service answers, 503 `{"status": "unavailable"}`
    otherwise. Staff sessions and holders of PGI_HEALTH_TOKEN also get each check's detail and the
    outbox relay's lag (which never makes it 503)."""
    checks = checks_memo.get()
    ok = all(check["ok"] for check in checks.values())
    body = {"status": "ok" if ok else "unavailable"}
    if may_see_health_details(request):
        body["checks"] = checks
        body["outboxRelay"] = outbox_relay_detail()
    return JsonResponse(body, status=200 if ok else 503)


def healthz(request):
    """Liveness: 200 while the process answers at all. Touches no backing service, so an outage of
    one never gets healthy web processes restarted."""
    return JsonResponse({"status": "ok"})


def readyz(request):
    """Readiness: 200 `{"status": "ready"}` when every check of PGI_READY_CHECKS passes (database,
    cache, Celery broker by default), else 503 `{"status": "unavailable"}`; the checks' details as
    /health shows them, to the same people."""
    checks = ready_memo.get()
    ok = all(check["ok"] for check in checks.values())
    body = {"status": "ready" if ok else "unavailable"}
    if may_see_health_details(request):
        body["checks"] = checks
    return JsonResponse(body, status=200 if ok else 503)


def docs_index(request):
    return render(request, "docs/index.html", {"pages": doc_pages()})


def docs_page(request, slug: str):
    page = doc_page(slug)
    if page is None:
        raise Http404(slug)
    context = {"page": page, "html": page.html(base_url_of(request)), "pages": doc_pages()}
    return render(request, "docs/page.html", context)


def login_locked_out(request, original_response=None, credentials=None):
    """The page of a login that Axes refused (AXES_LOCKOUT_CALLABLE): 429, in the layout of the
    sign-in it came from: the finance UI's (URL namespace `finance`) or the admin's."""
    context = {
        "title": "Sign-in locked",
        "username": get_client_username(request, credentials) or "",
        "cooloff_minutes": math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60),
    }
    match = getattr(request, "resolver_match", None)
    if match is not None and match.namespace == "finance":
        return render(request, "finance/login_locked_out.html", context, status=429)
    return render(request, "admin/login_locked_out.html", {**admin.site.each_context(request), **context}, status=429)
