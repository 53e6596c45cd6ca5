"""timestamptz columns read by psycopg's compiled loader, as Django reads them: aware, in UTC.

Django registers its own loader for timestamptz on every PostgreSQL connection: a subclass of
psycopg's pure-Python loader that parses the text and then sets the tzinfo to UTC. psycopg[binary]
ships a compiled loader that parses the same text and gives the session's time zone, which Django
sets to UTC (USE_TZ): the same value. A payment has three or four timestamps; reading them was about
a sixth of the CPU a list page spends on each row.

Registered on each new connection (`connection_created`) when Django would give UTC. The loader
carries Django's `timezone` attribute, so Django's cursors keep it (they register their own only
when a loader's time zone differs from the connection's). tests/test_timestamps.py compares both.
"""

from datetime import timezone

from django.conf import settings
from django.db.backends.signals import connection_created

TIMESTAMPTZ_OID = 1184  # psycopg.postgres.types["timestamptz"].oid


def _utc_loader():
    from psycopg import adapters, pq
    from psycopg.adapt import Loader

    compiled = adapters.get_loader(TIMESTAMPTZ_OID, pq.Format.TEXT)  # psycopg[binary]'s (a final class)

    class UtcTimestamptzLoader(Loader):
        timezone = timezone.utc  # what Django's cursors compare with the connection's

        def __init__(self, oid, context=None):
            super().__init__(oid, context)
            self._compiled = compiled(oid, context)
            # psycopg calls each column's `load`: the compiled loader's own, with no Python between.
            self.load = self._compiled.load

        def load(self, data):  # the class's, for the abstract Loader; instances use their own above
            return self._compiled.load(data)

    return UtcTimestamptzLoader


_LOADER = None


def _register(sender, connection, **kwargs) -> None:
    global _LOADER
    if connection.vendor != "postgresql" or not settings.USE_TZ or connection.timezone_name != "UTC":
        return
    from psycopg import pq

    if _LOADER is None:
        _LOADER = _utc_loader()
    adapters = connection.connection.adapters
    if adapters.get_loader(TIMESTAMPTZ_OID, pq.Format.TEXT) is not _LOADER:
        adapters.register_loader(TIMESTAMPTZ_OID, _LOADER)


def install() -> None:
    connection_created.connect(_register, dispatch_uid="pgi.timestamps")
