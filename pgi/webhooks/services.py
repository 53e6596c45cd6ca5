"""Writes of merchant webhooks: endpoints and their secrets, the fan-out from the outbox, the sending
with its retries, and redelivery.

Nothing here posts inside a request or a transaction: the fan-out turns outbox rows into deliveries
(Celery, beat), the sender claims due deliveries with a lease, posts outside any transaction, and
records the answer. The story: docs/10-webhooks.md.
"""

import logging
import random
import time
from collections import Counter, defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from pgi.audit.actors import Actor
from pgi.audit.services import audit_record
from pgi.errors import BusinessRuleViolation, ErrorDetail, ValidationFailed
from pgi.events.models import OutboxEvent
from pgi.events.payloads import events_settings, merchant_facing_body
from pgi.merchants.models import Merchant
from pgi.retention import delete_in_batches, retention_cutoff
from pgi.text import clip

from .models import ALL_EVENTS, EVENT_TYPES, DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from .net import PostResult, UnsafeUrl, post, url_check, webhooks_settings
from .signing import SIGNATURE_HEADER, secret_new, signature_header

logger = logging.getLogger(__name__)

USER_AGENT = "PGI-Webhooks/1"


# --- Endpoints ------------------------------------------------------------------------------------


def _checked_url(url: str) -> str:
    try:
        url_check(url)
    except UnsafeUrl as exc:
        raise ValidationFailed("The URL is not accepted.", details=[ErrorDetail("url", str(exc))]) from exc
    return url


def _checked_event_types(event_types: list[str]) -> list[str]:
    """Explicit types, or ["*"] alone for all: an empty list would be an endpoint that gets nothing."""
    unknown = [name for name in event_types if name not in EVENT_TYPES and name != ALL_EVENTS]
    if not event_types or unknown or (ALL_EVENTS in event_types and len(event_types) > 1):
        raise ValidationFailed(
            "Invalid event types.",
            details=[ErrorDetail("eventTypes", f'Give one or more of {", ".join(EVENT_TYPES)}, or ["*"] alone.')],
        )
    return list(dict.fromkeys(event_types))  # repeats dropped, order kept


def endpoint_create(
    *, merchant: Merchant, url: str, event_types: list[str], description: str = "", enabled: bool = True
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (the only time the secret is returned). Raises
    ValidationFailed for a URL PGI will not post to or unknown event types, BusinessRuleViolation
    past the merchant's number of endpoints."""
    event_types = _checked_event_types(event_types)
    _checked_url(url)
    limit = webhooks_settings()["max_endpoints_per_merchant"]
    with transaction.atomic():
        Merchant.objects.select_for_update().filter(pk=merchant.pk).first()  # one count at a time
        if WebhookEndpoint.objects.filter(merchant=merchant).count() >= limit:
            raise BusinessRuleViolation(
                f"A merchant may have at most {limit} webhook endpoints.", code="WEBHOOK_ENDPOINT_LIMIT"
            )
        secret = secret_new()
        endpoint = WebhookEndpoint.objects.create(
            merchant=merchant,
            url=url,
            event_types=event_types,
            description=description,
            enabled=enabled,
            secret=secret,
        )
    return endpoint, secret


def endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    event_types: list[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> WebhookEndpoint:
    """Changes what is given. A new URL is checked as on creation."""
    if url is not None:
        endpoint.url = _checked_url(url)
    if event_types is not None:
        endpoint.event_types = _checked_event_types(event_types)
    if description is not None:
        endpoint.description = description
    if enabled is not None:
        endpoint.enabled = enabled
    endpoint.save(update_fields=["url", "event_types", "description", "enabled", "updated_at"])
    return endpoint


def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """The endpoint goes with its deliveries and their attempts: nothing more is sent to it."""
    endpoint.delete()


def endpoint_secret_rotate(*, endpoint: WebhookEndpoint, now: datetime | None = None) -> str:
    """A new secret, returned once. The current one becomes the previous one and keeps signing (a
    second v1) for PGI_WEBHOOKS["rotation_hours"], so the receiver can switch without a gap."""
    now = now or timezone.now()
    hours = webhooks_settings()["rotation_hours"]
    with transaction.atomic():
        locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        locked.previous_secret = locked.secret
        locked.previous_secret_expires_at = now + timedelta(hours=hours)
        locked.secret = secret_new()
        locked.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    endpoint.refresh_from_db()
    return endpoint.secret


# --- Fan-out: outbox rows become deliveries -------------------------------------------------------


def deliveries_fan_out(*, batch_size: int | None = None, now: datetime | None = None) -> tuple[int, int]:
    """One batch of payment-events outbox rows not yet fanned out: a delivery for each enabled
    endpoint of the row's merchant subscribed to its type and created before the event, then the
    rows marked. Returns (rows marked, deliveries created). Rows are claimed with SKIP LOCKED, so
    runs in parallel take different rows; a row fanned out twice (a crash between) makes one
    delivery per endpoint (webhook_delivery_once)."""
    now = now or timezone.now()
    size = batch_size or webhooks_settings()["fanout_batch_size"]
    topic = events_settings()["payment_events_topic"]
    with transaction.atomic():
        rows = list(
            OutboxEvent.objects.select_for_update(skip_locked=True)
            .filter(webhooks_at__isnull=True, topic=topic)
            .order_by("id")
            .only("id", "event_id", "event_type", "body", "merchant_id", "created_at")[:size]
        )
        if not rows:
            return 0, 0
        endpoints = defaultdict(list)
        merchant_ids = {row.merchant_id for row in rows if row.merchant_id is not None}
        for endpoint in WebhookEndpoint.objects.filter(merchant_id__in=merchant_ids, enabled=True):
            endpoints[endpoint.merchant_id].append(endpoint)
        bodies = {row.id: merchant_facing_body(row.body) for row in rows if endpoints.get(row.merchant_id)}
        deliveries = [
            WebhookDelivery(
                endpoint=endpoint,
                event_id=row.event_id,
                event_type=row.event_type,
                body=bodies[row.id],
                next_attempt_at=now,
                created_at=now,
            )
            for row in rows
            for endpoint in endpoints.get(row.merchant_id, ())
            # An endpoint gets the events that happen after it exists, never the history before it.
            if endpoint.subscribes_to(row.event_type) and row.created_at >= endpoint.created_at
        ]
        created = WebhookDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        OutboxEvent.objects.filter(id__in=[row.id for row in rows]).update(webhooks_at=now)
        if deliveries:
            transaction.on_commit(wake_sender)
    return len(rows), len(created)


def wake_sender() -> None:
    """Ask a worker to send what is due now rather than at the next beat (best effort)."""
    from .tasks import webhooks_send

    try:
        webhooks_send.delay()
    except Exception:  # the beat sends it a few seconds later anyway
        logger.warning("Could not queue webhooks_send; the beat schedule will send.", exc_info=True)


def webhooks_fan_out_run(*, run_seconds: float | None = None) -> int:
    """Batches until no row waits or `run_seconds` (PGI_WEBHOOKS["run_seconds"]) have passed;
    returns the rows fanned out."""
    deadline = time.monotonic() + (run_seconds if run_seconds is not None else webhooks_settings()["run_seconds"])
    total = 0
    while True:
        marked, _created = deliveries_fan_out()
        total += marked
        if not marked or time.monotonic() >= deadline:
            return total


# --- Sending ----------------------------------------------------------------------------------------


def _lease() -> timedelta:
    """How long a claimed attempt is held: longer than any attempt can take (its timeouts), so that
    no other worker sends it meanwhile, and short enough that a dead worker's is taken again soon."""
    config = webhooks_settings()
    return timedelta(seconds=2 * (config["connect_timeout"] + config["read_timeout"]) + 30)


def deliveries_claim(
    *, limit: int, now: datetime, room: dict[int, int] | None = None
) -> list[tuple[WebhookDelivery, WebhookAttempt]]:
    """Due deliveries of enabled endpoints, each with its new attempt row, its next attempt pushed to
    the lease's end. SKIP LOCKED, so concurrent workers take different deliveries.

    `room` caps what one endpoint may take: {endpoint id: attempts it may still start}; an endpoint
    not named may start PGI_WEBHOOKS["endpoint_concurrency"]. So a slow or dead receiver holds a
    few of the sender's slots, never all of them, and other merchants' deliveries keep going."""
    cap = max(1, webhooks_settings()["endpoint_concurrency"])
    room = dict(room or {})
    with transaction.atomic():
        candidates = (
            WebhookDelivery.objects.due(now)
            .select_related("endpoint")
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("next_attempt_at")
        )
        full = [endpoint_id for endpoint_id, left in room.items() if left <= 0]
        if full:
            candidates = candidates.exclude(endpoint_id__in=full)
        deliveries = []
        # Rows locked but not taken (over an endpoint's room) are released at the commit, untouched;
        # the caller claims again with that endpoint excluded.
        for delivery in candidates[:limit]:
            left = room.get(delivery.endpoint_id, cap)
            if left > 0:
                room[delivery.endpoint_id] = left - 1
                deliveries.append(delivery)
                if len(deliveries) == limit:
                    break
        # An attempt left unanswered by a worker that died: its lease lapsed, so it is closed here.
        WebhookAttempt.objects.filter(delivery__in=deliveries, finished_at__isnull=True).update(
            finished_at=now, error="No answer recorded: the worker stopped during the attempt."
        )
        attempts = []
        for delivery in deliveries:
            delivery.attempts += 1
            delivery.next_attempt_at = now + _lease()
            attempts.append(
                WebhookAttempt(
                    delivery=delivery,
                    number=delivery.attempts,
                    trigger=WebhookAttempt.Trigger.REDELIVERY
                    if delivery.redelivery_requested_by
                    else WebhookAttempt.Trigger.SCHEDULED,
                    requested_by=delivery.redelivery_requested_by,
                    url=delivery.endpoint.url,
                    started_at=now,
                )
            )
            delivery.redelivery_requested_by = ""
        WebhookDelivery.objects.bulk_update(deliveries, ["attempts", "next_attempt_at", "redelivery_requested_by"])
        WebhookAttempt.objects.bulk_create(attempts)
    return list(zip(deliveries, attempts))


def delivery_headers(delivery: WebhookDelivery, *, now: datetime) -> dict[str, str]:
    timestamp = int(now.timestamp())
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature_header(
            secrets=delivery.endpoint.signing_secrets(now), timestamp=timestamp, body=delivery.body.encode()
        ),
        "PGI-Event-Id": str(delivery.event_id),
        "PGI-Event-Type": delivery.event_type,
        "PGI-Delivery-Id": delivery.id,
    }


def retry_delay(attempts: int) -> timedelta | None:
    """The wait after the `attempts`-th failed attempt, with jitter; None when it was the last."""
    config = webhooks_settings()
    schedule = config["retry_schedule"]
    if attempts > len(schedule):
        return None
    spread = config["jitter"]
    return timedelta(seconds=schedule[attempts - 1] * random.uniform(1 - spread, 1 + spread))


def attempt_record(*, delivery: WebhookDelivery, attempt: WebhookAttempt, result: PostResult, now: datetime) -> None:
    """The attempt's answer, and the delivery's next step: succeeded, a retry, or failed (no
    scheduled attempt left, or a redelivery of a finished delivery failed)."""
    with transaction.atomic():
        WebhookAttempt.objects.filter(pk=attempt.pk).update(
            finished_at=now,
            duration_ms=result.duration_ms,
            response_status=result.status,
            response_body=result.body,
            error=result.error,
            succeeded=result.succeeded,
        )
        locked = WebhookDelivery.objects.select_for_update().filter(pk=delivery.pk).first()
        if locked is None:
            return  # the endpoint was deleted, with its deliveries, while the attempt ran
        if locked.status != DeliveryStatus.PENDING or locked.attempts != attempt.number:
            return  # the lease lapsed and a later attempt owns the delivery: this one is history only
        locked.last_response_status = result.status
        locked.last_error = result.error
        delay = None if result.succeeded or locked.redelivery_only else retry_delay(locked.attempts)
        if result.succeeded:
            locked.status, locked.succeeded_at, locked.next_attempt_at = DeliveryStatus.SUCCEEDED, now, None
        elif delay is None:
            locked.status, locked.failed_at, locked.next_attempt_at = DeliveryStatus.FAILED, now, None
        else:
            locked.next_attempt_at = now + delay
        locked.redelivery_only = False
        locked.save()


def _send(pair: tuple[WebhookDelivery, WebhookAttempt]) -> PostResult:
    delivery, _attempt = pair
    started = time.monotonic()
    try:
        return post(delivery.endpoint.url, body=delivery.body.encode(), headers=delivery_headers(delivery, now=timezone.now()))
    except Exception as exc:  # one delivery's failure is its own: it never stops the others
        logger.exception("webhook delivery %s: the attempt failed", delivery.id)
        return PostResult(None, "", clip(f"{type(exc).__name__}: {exc}", 255), int((time.monotonic() - started) * 1000))


def _record(delivery: WebhookDelivery, attempt: WebhookAttempt, result: PostResult) -> None:
    try:
        attempt_record(delivery=delivery, attempt=attempt, result=result, now=timezone.now())
    except Exception:  # left to the lease: the delivery is taken again when it lapses
        logger.exception("webhook delivery %s: the answer could not be recorded", delivery.id)


def _send_pool(*, deadline: float | None) -> int:
    """Keep up to PGI_WEBHOOKS["send_concurrency"] attempts in flight: a slot freed by an answer is
    filled at once with the next due delivery, so one slow receiver never holds up a batch, and no
    endpoint has more than PGI_WEBHOOKS["endpoint_concurrency"] attempts in flight. Stops claiming
    when nothing is due (or at `deadline`), then waits for the attempts in flight. The HTTP is done
    on the pool's threads; the database work (claims, answers) on this one, outside the posts."""
    config = webhooks_settings()
    slots = max(1, config["send_concurrency"])
    cap = max(1, config["endpoint_concurrency"])
    in_flight: dict[Future, tuple[WebhookDelivery, WebhookAttempt]] = {}
    busy: Counter[int] = Counter()
    attempted = 0
    with ThreadPoolExecutor(max_workers=slots) as pool:
        claiming = True
        while True:
            while claiming and len(in_flight) < slots:
                room = {endpoint_id: cap - count for endpoint_id, count in busy.items() if count}
                claimed = deliveries_claim(limit=slots - len(in_flight), now=timezone.now(), room=room)
                for pair in claimed:
                    in_flight[pool.submit(_send, pair)] = pair
                    busy[pair[0].endpoint_id] += 1
                attempted += len(claimed)
                if deadline is not None and time.monotonic() >= deadline:
                    claiming = False
                if not claimed:
                    break
            if not in_flight:
                return attempted
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                delivery, attempt = in_flight.pop(future)
                busy[delivery.endpoint_id] -= 1
                _record(delivery, attempt, future.result())


def deliveries_send_due() -> int:
    """Send everything due now (new deliveries, retries, redeliveries), each endpoint a few at a
    time, and record each answer. Returns how many attempts were made."""
    return _send_pool(deadline=None)


def webhooks_send_run(*, run_seconds: float | None = None) -> int:
    """As deliveries_send_due, but no new attempt starts after `run_seconds` (the beat task's run)."""
    run = run_seconds if run_seconds is not None else webhooks_settings()["run_seconds"]
    return _send_pool(deadline=time.monotonic() + run)


def deliveries_prune(*, older_than_days: int | None = None, batch_size: int | None = None) -> int:
    """Delete finished deliveries (succeeded or failed), with their attempts, created more than
    `older_than_days` (PGI_WEBHOOKS["retention_days"]) ago; returns how many. Batches of
    `batch_size` (PGI_RETENTION), each DELETE its own short transaction. Pending deliveries are
    never deleted."""
    days = webhooks_settings()["retention_days"] if older_than_days is None else older_than_days
    old = WebhookDelivery.objects.exclude(status=DeliveryStatus.PENDING).filter(created_at__lt=retention_cutoff(days))
    return delete_in_batches(
        old, size=batch_size, before=lambda ids: WebhookAttempt.objects.filter(delivery_id__in=ids).delete()
    )


# --- Redelivery -------------------------------------------------------------------------------------


def delivery_redeliver(
    *, delivery: WebhookDelivery, requested_by: str, now: datetime | None = None, actor: Actor | None = None
) -> WebhookDelivery:
    """Ask for an attempt now. A finished delivery (succeeded or failed) gets one more attempt, with
    no retries after it; a pending one has its next attempt brought forward. Asking again before the
    attempt runs changes nothing, and a pending delivery whose attempt is running is left to it.
    Raises BusinessRuleViolation when the endpoint is disabled."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = WebhookDelivery.objects.select_for_update().select_related("endpoint").get(pk=delivery.pk)
        if not locked.endpoint.enabled:
            raise BusinessRuleViolation(
                "The endpoint is disabled; enable it to redeliver.", code="WEBHOOK_ENDPOINT_DISABLED"
            )
        running = locked.attempt_rows.filter(finished_at__isnull=True, number=locked.attempts).exists()
        before = {"status": locked.status, "next_attempt_at": locked.next_attempt_at}
        if locked.status != DeliveryStatus.PENDING:
            locked.status = DeliveryStatus.PENDING
            locked.redelivery_only = True
            locked.next_attempt_at = now
            locked.redelivery_requested_by = clip(requested_by, 150)
            locked.save()
        elif not running and locked.next_attempt_at > now:
            locked.next_attempt_at = now
            locked.redelivery_requested_by = clip(requested_by, 150)
            locked.save()
        audit_record(actor=actor, action="webhook_delivery.redeliver", obj=locked, before=before,
                     after={"status": locked.status, "next_attempt_at": locked.next_attempt_at})  # fmt: skip
        transaction.on_commit(wake_sender)
    return locked
