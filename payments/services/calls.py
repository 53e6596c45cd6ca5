"""Calls to gateways: each one recorded as a GatewayAttempt and told to the gateway's breaker.

No gateway call runs inside a database transaction: what is sent is committed first (a payment as
Processing, a capture or void as a pending operation), and what the gateway said is applied in a
second, short transaction (payments.services.answers). A crash in between leaves an operation
whose outcome is unknown, which recovery (payments.services.recovery) settles by asking the gateway.
"""

import logging
import time
from datetime import timedelta
from typing import Callable, TypeVar

from django.conf import settings
from django.db import connection
from django.utils import timezone

from gateways.base import (
    SHAPE_ERRORS,
    Connector,
    GatewayResult,
    GatewayTimeout,
    GatewayUnavailable,
    Operation,
    RefundResult,
    UnreadableAnswer,
    idempotency_key,
    shape_problem,
)
from gateways.breaker import breaker_for
from pgi.text import clip

from ..models import GatewayAttempt

logger = logging.getLogger(__name__)

Outcome = GatewayAttempt.Outcome
R = TypeVar("R", GatewayResult, RefundResult, GatewayResult | None)


def recovery_due_from(moment=None, connector: Connector | None = None):
    """When recovery may first look at a payment whose outcome is not known yet.

    Never before a call to `connector` that starts at `moment` has certainly given up: while the
    request may still be waiting on the gateway it owns the payment, and a recovery re-send then
    could race it (and, after an unavailable answer, the request's failover) into a second charge.
    """
    wait = settings.PGI_RECOVERY["grace_seconds"]
    if connector is not None:
        wait = max(wait, connector.max_call_seconds + 30)
    return (moment or timezone.now()) + timedelta(seconds=wait)


def _connection_release() -> None:
    """With a connection pool (PGI_DB_POOL_SIZE), give this thread's connection back before a call:
    a thread waiting 200 ms to seconds for a gateway holds none, so a web process with many threads
    needs few connections. Outside a transaction only (no gateway call runs inside one).

    Without the pool the thread keeps its connection across the call, which may be dropped meanwhile
    (a database restart): its first query after the call checks it again (CONN_HEALTH_CHECKS), as
    the pool checks a connection it hands out."""
    if connection.in_atomic_block:
        return
    if getattr(connection, "pool", None) is not None:
        connection.close()
    else:
        connection.health_check_done = False


def _attempt_outcome(result: GatewayResult | RefundResult | None) -> str:
    if result is None:
        return Outcome.NOT_FOUND
    status = result.status.value
    return {"failed": Outcome.DECLINED}.get(status, status)


def attempt_record(**fields) -> GatewayAttempt:
    """Save one attempt (fields as attempt_new's)."""
    attempt = attempt_new(**fields)
    attempt.save(force_insert=True)
    return attempt


def attempt_new(
    *,
    payment_id: str,
    operation: Operation,
    gateway: str,
    key: str,
    outcome: str,
    latency_ms: int = 0,
    gateway_reference: str = "",
    error_code: str = "",
    message: str = "",
) -> GatewayAttempt:
    return GatewayAttempt(
        payment_id=payment_id,
        operation=operation.value,
        gateway=gateway,
        idempotency_key=key,
        outcome=outcome,
        latency_ms=latency_ms,
        gateway_reference=clip(gateway_reference, 128),
        error_code=clip(error_code, 64),
        message=clip(message, 255),
    )


def gateway_call(
    *,
    payment_id: str,
    connector: Connector,
    operation: Operation,
    call: Callable[[], R],
    key: str | None = None,
    record_in: list[GatewayAttempt] | None = None,
) -> R:
    """Run one call to a gateway, record it as a GatewayAttempt and tell the gateway's breaker.

    `key` is the idempotency key the call sends; by default the one derived from the payment id
    (a refund passes its own). Returns what the connector returned; re-raises GatewayUnavailable
    and GatewayTimeout (both count as failures for the breaker, unless staged: `counts_for_breaker`). An answer the connector cannot
    read (it raised KeyError, TypeError, … reading it, or returned a result whose fields do not fit)
    leaves the outcome unknown: recorded as a timeout and raised as UnreadableAnswer (a
    GatewayTimeout, so recovery asks later; not counted: the gateway answered). Any other error (a
    connector bug) is recorded as `error` and re-raised.

    With `record_in`, the attempt of a call that answered is not saved but appended there, for the
    caller to save in the commit that applies the answer (payment_apply_gateway_result's
    `attempts`); every other outcome is saved at once.
    """
    if key is None:
        key = idempotency_key(operation if operation is not Operation.STATUS else Operation.AUTHORIZE, payment_id)
    breaker = breaker_for(connector.code)
    _connection_release()
    started = time.monotonic()

    def record(outcome: str, *, later: bool = False, **fields) -> None:
        attempt = dict(
            payment_id=payment_id,
            operation=operation,
            gateway=connector.code,
            key=key,
            outcome=outcome,
            latency_ms=int((time.monotonic() - started) * 1000),
            **fields,
        )
        if later and record_in is not None:
            record_in.append(attempt_new(**attempt))
        else:
            attempt_record(**attempt)

    try:
        result = call()
    except GatewayUnavailable as exc:
        if exc.counts_for_breaker:
            breaker.record_failure()
        record(Outcome.UNAVAILABLE, message=str(exc))
        raise
    except UnreadableAnswer as exc:
        record(Outcome.TIMEOUT, message=str(exc))
        raise
    except GatewayTimeout as exc:
        if exc.counts_for_breaker:
            breaker.record_failure()
        record(Outcome.TIMEOUT, message=str(exc))
        raise
    except SHAPE_ERRORS as exc:
        logger.warning("%s %s of %s: unreadable answer", connector.code, operation.value, payment_id, exc_info=True)
        unreadable = UnreadableAnswer(f"{connector.code} answered in a shape PGI cannot read ({type(exc).__name__}: {exc})")
        record(Outcome.TIMEOUT, message=str(unreadable))
        raise unreadable from exc
    except Exception as exc:  # a connector bug: kept on the record, then raised as it was
        record(Outcome.ERROR, message=f"{type(exc).__name__}: {exc}")
        raise
    problem = shape_problem(result) if result is not None else ""
    if problem:
        unreadable = UnreadableAnswer(f"{connector.code} answered in a shape PGI cannot read: {problem}")
        record(Outcome.TIMEOUT, message=str(unreadable))
        raise unreadable
    breaker.record_success()
    record(
        _attempt_outcome(result),
        later=True,
        gateway_reference=getattr(result, "reference", ""),
        error_code=getattr(result, "error_code", ""),
        message=getattr(result, "error_message", ""),
    )
    return result
