"""Prepared statements (settings.PGI_DB_PREPARED_STATEMENTS) kept working across a migration.

PostgreSQL refuses to run a prepared statement whose result columns changed type since it was
prepared (`cached plan must not change result type`): after a migration that alters a column a
statement reads, say while the previous release still serves during a rolling deploy. psycopg
forgets every prepared statement of a connection when a transaction rolls back, so a statement in a
transaction fails once and the connection is well again. A statement outside one (a GET by id runs
in autocommit) would fail on that connection every time: this wrapper forgets the connection's
prepared statements (`DEALLOCATE ALL`, which psycopg follows) and runs the statement once more,
which is safe because the failed statement did nothing.
"""

from django.db.backends.signals import connection_created

STALE_PLAN = "cached plan must not change result type"
FEATURE_NOT_SUPPORTED = "0A000"


def _is_stale_plan(exc: BaseException) -> bool:
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) == FEATURE_NOT_SUPPORTED and STALE_PLAN in str(cause)


def replan_stale_statements(execute, sql, params, many, context):
    try:
        return execute(sql, params, many, context)
    except Exception as exc:
        connection = context["connection"]
        if not _is_stale_plan(exc) or connection.in_atomic_block or not connection.get_autocommit():
            raise  # in a transaction: it is lost, and its rollback forgets the prepared statements
        context["cursor"].cursor.execute("DEALLOCATE ALL")
        return execute(sql, params, many, context)


def _wrap(sender, connection, **kwargs) -> None:
    options = connection.settings_dict.get("OPTIONS", {})
    if connection.vendor == "postgresql" and options.get("prepare_threshold") is not None:
        if replan_stale_statements not in connection.execute_wrappers:
            connection.execute_wrappers.append(replan_stale_statements)


def install() -> None:
    connection_created.connect(_wrap, dispatch_uid="pgi.prepared_statements")
