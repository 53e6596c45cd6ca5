"""Deploy check: outside the sandbox, webhooks must not be allowed to post to internal addresses."""

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def private_urls_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    if settings.PGI_WEBHOOKS["allow_private_urls"] and not settings.PGI_SANDBOX:
        return [
            checks.Error(
                "PGI_WEBHOOKS_ALLOW_PRIVATE_URLS is on outside the sandbox: merchants could register webhook "
                "URLs that reach loopback, private or link-local addresses inside the bank's network.",
                hint="Unset PGI_WEBHOOKS_ALLOW_PRIVATE_URLS (docs/10-webhooks.md, Which URLs are accepted).",
                id="pgi.E030",
            )
        ]
    return []
