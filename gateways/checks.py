"""Start-up checks of the gateway settings: a mistake here should stop a deploy, not fail payments."""

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured


@checks.register("pgi")
def gateway_settings_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from .breaker import breaker_for
    from .registry import get_connector

    errors = []
    if settings.PGI_DEFAULT_GATEWAY not in settings.PGI_GATEWAYS:
        errors.append(
            checks.Error(
                f"PGI_DEFAULT_GATEWAY {settings.PGI_DEFAULT_GATEWAY!r} is not one of PGI_GATEWAYS "
                f"({', '.join(settings.PGI_GATEWAYS) or 'none'}).",
                id="pgi.E001",
            )
        )
    for code in settings.PGI_GATEWAYS:
        try:
            get_connector(code)
            breaker_for(code)
        except (ImproperlyConfigured, TypeError, ValueError, ImportError) as exc:
            errors.append(checks.Error(f"Gateway {code!r} is misconfigured: {exc}", id="pgi.E002"))
    return errors
