from django.http import Http404, JsonResponse
from django.shortcuts import render

from .docs import doc_page, doc_pages
from .health import run_checks


def health(request):
    """200 when every backing service answers, 503 otherwise; the body says which failed."""
    checks = run_checks()
    ok = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ok" if ok else "degraded", "checks": checks}, status=200 if ok else 503)


def docs_index(request):
    return render(request, "docs/index.html", {"pages": doc_pages()})


def docs_page(request, slug: str):
    page = doc_page(slug)
    if page is None:
        raise Http404(slug)
    return render(request, "docs/page.html", {"page": page, "pages": doc_pages()})
