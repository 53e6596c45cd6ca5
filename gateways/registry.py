"""Connectors by code, built once from settings.PGI_GATEWAYS (dotted class paths and options)."""

from functools import lru_cache

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from .base import Connector


class UnknownGateway(LookupError):
    pass


@lru_cache(maxsize=None)
def _connectors() -> dict[str, Connector]:
    built = {}
    for code, config in settings.PGI_GATEWAYS.items():
        options = dict(config)
        cls = import_string(options.pop("class"))
        built[code] = cls(code, **options)
    return built


def get_connector(code: str) -> Connector:
    try:
        return _connectors()[code]
    except KeyError as exc:
        raise UnknownGateway(code) from exc


def configured_codes() -> list[str]:
    """The codes of the configured gateways, in settings order."""
    return list(settings.PGI_GATEWAYS)


def _reset(*, setting, **kwargs):
    if setting in {"PGI_GATEWAYS", "PGI_DEFAULT_GATEWAY"}:
        _connectors.cache_clear()


setting_changed.connect(_reset)
