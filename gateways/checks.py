"""Start-up checks of the gateway settings: a mistake here should stop a deploy, not fail payments."""

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured


@checks.register("pgi")
def gateway_settings_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from .breaker import breaker_for
    from .registry import get_connector

    errors: list[checks.CheckMessage] = []
    if not settings.PGI_GATEWAYS:
        errors.append(
            checks.Warning(
                "No gateway is configured: every payment fails as GATEWAY_UNAVAILABLE.",
                hint="Set Stripe or Adyen credentials, or PGI_SIMULATOR_ENABLED=true with "
                "PGI_SIMULATOR_WEBHOOK_SECRET (docs/03-simulator.md).",
                id="pgi.W010",
            )
        )
    elif settings.PGI_DEFAULT_GATEWAY not in settings.PGI_GATEWAYS:
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


@checks.register("pgi", deploy=True)
def gateway_webhook_secrets_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Every gateway's webhooks must be verifiable with a secret nobody else knows; outside the
    sandbox the simulator runs only when enabled on purpose, with a long secret of its own."""
    from .registry import get_connector
    from .simulator.connector import SimulatorConnector

    errors: list[checks.CheckMessage] = []
    for code in settings.PGI_GATEWAYS:
        try:
            connector = get_connector(code)
        except (ImproperlyConfigured, TypeError, ValueError, ImportError):
            continue  # reported by gateway_settings_check
        problem = connector.webhook_problem()  # what the endpoint refuses with 503, said at deploy
        if problem:
            errors.append(
                checks.Error(
                    f"Gateway {code!r} cannot verify its webhooks: {problem}. Its webhook endpoint "
                    "answers 503 WEBHOOK_NOT_CONFIGURED.",
                    hint=(
                        "Set PGI_SIMULATOR_WEBHOOK_SECRET=$(openssl rand -hex 32), or leave PGI_SIMULATOR_ENABLED "
                        "unset (docs/03-simulator.md)."
                        if isinstance(connector, SimulatorConnector)
                        else "Set the gateway's webhook secret (docs/05-gateway-stripe.md, docs/06-gateway-adyen.md)."
                    ),
                    id="pgi.E010",
                )
            )
    return errors
