"""pgi.web.csp writes the policy django-csp's own middleware writes, on every kind of answer, and
builds it again when the settings change."""

import pytest
from csp.constants import HEADER, HEADER_REPORT_ONLY, NONE, SELF
from csp.decorators import csp_exempt, csp_update
from csp.middleware import CSPMiddleware
from django.http import HttpResponse, JsonResponse
from django.test import RequestFactory, override_settings

from pgi.web.csp import PolicyCachingCSPMiddleware


def page_using_the_nonce(request):
    return HttpResponse(f'<script nonce="{request.csp_nonce}"></script>')


def api_answer(request):
    return JsonResponse({"id": "pay_1"})


@csp_update({"img-src": ["https://maps.example"]})
def view_updating_the_policy(request):
    return HttpResponse("map")


@csp_exempt()
def exempt_view(request):
    return HttpResponse("plain")


def headers(middleware_class, view, path="/v1/payments"):
    request = RequestFactory().get(path)
    response = middleware_class(view)(request)
    return response.get(HEADER), response.get(HEADER_REPORT_ONLY), request


@pytest.mark.parametrize("view", [api_answer, page_using_the_nonce, view_updating_the_policy, exempt_view])
def test_the_headers_are_django_csps(view):
    ours, theirs = headers(PolicyCachingCSPMiddleware, view), headers(CSPMiddleware, view)
    if view is page_using_the_nonce:  # a fresh nonce each: the same policy around it
        assert ours[0].split("'nonce-")[0] == theirs[0].split("'nonce-")[0] and "'nonce-" in ours[0]
    else:
        assert sort_directives(ours[0]) == sort_directives(theirs[0])
    assert ours[1] == theirs[1]
    assert (ours[0] is None) == (view is exempt_view)


def sort_directives(header):
    return None if header is None else sorted(d.strip() for d in header.split(";"))


def test_a_template_asking_for_the_nonce_after_the_header_is_written_fails_as_with_django_csp():
    from csp.exceptions import CSPNonceError

    *_, request = headers(PolicyCachingCSPMiddleware, api_answer)
    with pytest.raises(CSPNonceError):
        str(request.csp_nonce)


def test_changed_settings_give_the_changed_policy_and_report_only_one():
    before, *_ = headers(PolicyCachingCSPMiddleware, api_answer)
    strict = {"DIRECTIVES": {"default-src": [NONE]}}
    report = {"DIRECTIVES": {"default-src": [SELF], "report-uri": "/csp-report"}}
    with override_settings(CONTENT_SECURITY_POLICY=strict, CONTENT_SECURITY_POLICY_REPORT_ONLY=report):
        policy, report_only, _ = headers(PolicyCachingCSPMiddleware, api_answer)
        assert policy == "default-src 'none'"
        assert sort_directives(report_only) == ["default-src 'self'", "report-uri /csp-report"]
    with override_settings(CONTENT_SECURITY_POLICY={**strict, "EXCLUDE_URL_PREFIXES": ["/v1/"]}):
        assert headers(PolicyCachingCSPMiddleware, api_answer)[0] is None
        assert headers(PolicyCachingCSPMiddleware, api_answer, path="/docs/")[0] == "default-src 'none'"
    assert headers(PolicyCachingCSPMiddleware, api_answer)[0] == before
