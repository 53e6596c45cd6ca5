"""Prepared statements (settings.PGI_DB_PREPARED_STATEMENTS) only where a migration cannot hurt.

PostgreSQL refuses to run a prepared statement whose result columns changed type since it was
prepared (`cached plan must not change result type`): after a migration that alters a column a
statement reads, say while the previous release still serves during a rolling deploy.

- Inside a transaction a statement is not prepared. A failure there would lose the whole
  transaction, and the transactions are where money moves: a payment's answer is written in one
  after the gateway has charged. Except a statement whose result columns have types that no
  migration changes (`result_types_fixed`): that error cannot happen to it, and PostgreSQL plans a
  prepared statement again by itself when a table it names has changed. pgi.compiled's combined
  writes are such statements; preparing them saves PostgreSQL parsing and planning a statement of
  five or six writes for each payment.
- Outside one (the reads of the API: a GET by id, a list page, run in autocommit) the statements
  PGI repeats are prepared from their 5th run. A statement that meets a changed column is run again
  after `DEALLOCATE ALL` (which psycopg follows, forgetting the connection's prepared statements):
  safe, because the failed statement did nothing.
"""

from django.db.backends.signals import connection_created
from psycopg import ServerCursor

STALE_PLAN = "cached plan must not change result type"
FEATURE_NOT_SUPPORTED = "0A000"


def _is_stale_plan(exc: BaseException) -> bool:
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) == FEATURE_NOT_SUPPORTED and STALE_PLAN in str(cause)


# Statements whose result types are fixed (see above), up to a bound: the set only grows with the
# shapes of writes the code makes, a few dozen.
_FIXED: set[str] = set()
_FIXED_MAX = 1000


def result_types_fixed(sql: str) -> None:
    """Say that `sql`'s result columns have types no migration changes (casts, literals), so that it
    may be prepared inside a transaction too."""
    if len(_FIXED) < _FIXED_MAX:
        _FIXED.add(sql)


def prepare_outside_transactions(execute, sql, params, many, context):
    connection = context["connection"]
    raw = context["cursor"].cursor
    if isinstance(raw, ServerCursor):  # a named cursor (.iterator()) is never prepared
        return execute(sql, params, many, context)
    in_transaction = connection.in_atomic_block or not connection.get_autocommit()
    if in_transaction and not many and sql not in _FIXED:
        # As Django's CursorWrapper._execute, with psycopg told not to prepare.
        connection.validate_no_broken_transaction()
        with connection.wrap_database_errors:
            if params is None:
                return raw.execute(sql, prepare=False)
            return raw.execute(sql, params, prepare=False)
    try:
        return execute(sql, params, many, context)
    except Exception as exc:
        if in_transaction or not _is_stale_plan(exc):
            raise
        raw.execute("DEALLOCATE ALL")
        return execute(sql, params, many, context)


def _wrap(sender, connection, **kwargs) -> None:
    options = connection.settings_dict.get("OPTIONS", {})
    if connection.vendor == "postgresql" and options.get("prepare_threshold") is not None:
        if prepare_outside_transactions not in connection.execute_wrappers:
            connection.execute_wrappers.append(prepare_outside_transactions)


def install() -> None:
    connection_created.connect(_wrap, dispatch_uid="pgi.prepared_statements")
