"""django-csp's middleware, with the policy of an answer that has no nonce and no view's own changes
written once per process.

Such an answer (every API answer, most of all) gets the policy of the settings alone, yet django-csp
builds it anew for each one: copies of every directive, sorted, joined, twice (the policy and the
report-only one). Here it is built once and kept until the settings change. An answer whose page
used the nonce, or whose view changed the policy (`csp_update`, `csp_replace`, `csp_exempt`…), goes
through django-csp unchanged.
"""

from functools import lru_cache

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject, CSPMiddleware
from csp.utils import build_policy

VIEW_CHANGES = (
    "_csp_config", "_csp_update", "_csp_replace", "_csp_exempt",
    "_csp_config_ro", "_csp_update_ro", "_csp_replace_ro", "_csp_exempt_ro",
)
SETTINGS = {False: "CONTENT_SECURITY_POLICY", True: "CONTENT_SECURITY_POLICY_REPORT_ONLY"}


@lru_cache(maxsize=2)
def settings_policy(report_only: bool) -> tuple[str, tuple[str, ...]]:
    """(the header's value, the path prefixes it is not sent on) of the settings alone."""
    configured = getattr(settings, SETTINGS[report_only], None) or {}
    return build_policy(report_only=report_only), tuple(configured.get("EXCLUDE_URL_PREFIXES") or ())


@receiver(setting_changed)
def forget_policy(setting, **kwargs):
    if setting in SETTINGS.values():
        settings_policy.cache_clear()


class PolicyCachingCSPMiddleware(CSPMiddleware):
    def process_response(self, request, response):
        if getattr(request, "_csp_nonce", None) is not None or any(
            getattr(response, name, None) is not None for name in VIEW_CHANGES
        ):
            return super().process_response(request, response)
        if settings.DEBUG and response.status_code in (404, 500):  # Django's debug pages, as django-csp
            return response
        for header, report_only in ((HEADER, False), (HEADER_REPORT_ONLY, True)):
            policy, excluded = settings_policy(report_only)
            if policy and header not in response and not request.path_info.startswith(excluded):
                response[header] = policy
        # As django-csp: a template asking for the nonce after the header is written is an error.
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)
        return response
