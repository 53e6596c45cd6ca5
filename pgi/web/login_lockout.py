"""Lockout of repeated failed logins (django-axes), wired to PGI's settings.

Axes counts failures per username and client address together (`AXES_LOCKOUT_PARAMETERS`); the
handler below adds a higher limit per address across usernames. Staff unlock by deleting the
rows under *Engineering → Access attempts* in the admin; docs/04-operations.md tells the story.
"""

from axes.attempts import get_cool_off_threshold
from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum


def client_address(request) -> str | None:
    """The address of the client as the outermost of `PGI_PROXY_COUNT` proxies saw it.

    Each proxy appends the address it was called from to X-Forwarded-For, so the entry that many
    places from the right is the client; entries further left are whatever the client sent and are
    never believed. Without proxies, or when the header is shorter than expected, REMOTE_ADDR.
    """
    proxies = settings.PGI_PROXY_COUNT
    remote = request.META.get("REMOTE_ADDR")
    if proxies <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < proxies:
        return remote
    return forwarded[-proxies]


class LoginAttemptHandler(AxesDatabaseHandler):
    """Axes' database handler, plus `PGI_LOGIN_ADDRESS_FAILURE_LIMIT` failures per address."""

    def get_failures(self, request, credentials=None) -> int:
        failures = super().get_failures(request, credentials)
        from_address = AccessAttempt.objects.filter(
            ip_address=request.axes_ip_address,
            attempt_time__gte=get_cool_off_threshold(request),
        ).aggregate(total=Sum("failures_since_start"))["total"]
        if (from_address or 0) >= settings.PGI_LOGIN_ADDRESS_FAILURE_LIMIT:
            # Axes locks out when the failures reach its limit: report at least that many.
            return max(failures, get_failure_limit(request, credentials))
        return failures


class LoginLockoutBackend(AxesStandaloneBackend):
    """Refuses logins that are locked out; authenticates nobody itself.

    `authenticate()` without a request (a management command or `manage.py shell`) comes from the
    host, not from the network, and is not counted: Axes' own backend would raise instead.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
