"""`Idempotency-Key` for POST views: the first response is stored and replayed for 24 hours.

Claiming a key is an INSERT under a unique constraint, committed before the view runs, so of any
number of concurrent requests with one key exactly one runs; the others get 409 with Retry-After.
The claim is a short lease that this process renews while the view runs. The view's service links
what the request creates (or acts on) to the claim in the commit that creates it, so when a crashed
request's lease lapses the key answers from that object's current state, or, with nothing linked,
lets one retry take the claim over and run. The same key with a request that means something else
is refused with 422. Every response the view gives, 4xx and 5xx alike, is kept and replayed as it
was: a 5xx may come after the payment was created or even charged, so running the request again
could take the money twice. Only a lost database (503, nothing of it committed but what it linked)
is not kept: the claim is abandoned as after a crash. The long story: docs/01-integration-guide.md
and docs/04-operations.md.
"""

import functools
import hashlib
import logging
import math
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Callable

import simplejson
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import DatabaseError, IntegrityError, connection, models, transaction
from django.db.models import Q
from django.http import HttpResponse
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.response import Response

from pgi.errors import BusinessRuleViolation, ErrorDetail, ValidationFailed

from .exception_handler import DATABASE_UNAVAILABLE
from .models import IdempotencyRecord
from .renderers import DecimalJSONRenderer

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
KEY_SHAPE = re.compile(r"^[\x21-\x7e]{1,255}$")
PATH_MAX = IdempotencyRecord._meta.get_field("path").max_length


class KeyInProgress(exceptions.APIException):
    """409 IDEMPOTENCY_IN_PROGRESS; the exception handler turns `wait` into Retry-After."""

    status_code = 409
    default_code = "idempotency_in_progress"
    default_detail = "A request with this Idempotency-Key is still being processed."

    def __init__(self, wait: int):
        super().__init__()
        self.wait = max(1, wait)


def _normalized(value):
    """Numbers by value, not by spelling: 50, 50.0 and 50.00 are one amount."""
    if isinstance(value, Decimal):
        return value.normalize()
    if isinstance(value, dict):
        return {key: _normalized(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_normalized(item) for item in value]
    return value


def request_fingerprint(method: str, path: str, data) -> str:
    canonical = simplejson.dumps(_normalized(data), use_decimal=True, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def scope_for(api_key) -> str:
    return f"m:{api_key.merchant_id}" if api_key.merchant_id else f"k:{api_key.pk}"


def _lease() -> timedelta:
    return timedelta(seconds=settings.PGI_IDEMPOTENCY_LEASE_SECONDS)


def _seconds_until(moment) -> int:
    return math.ceil((moment - timezone.now()).total_seconds())


def _stored_path(path: str) -> str:
    """The path as the admin shows it: cut to fit its column (the fingerprint has it whole), NUL
    written out (PostgreSQL text cannot hold it)."""
    path = path.replace("\x00", "\\x00")
    return path if len(path) <= PATH_MAX else path[: PATH_MAX - 1] + "…"


def _render(response) -> str:
    return DecimalJSONRenderer().render(response.data).decode()


@dataclass(frozen=True)
class Claim:
    """This request's hold on a key. Every write names its token: once a lapsed claim has been taken
    over by a retry, the old run can neither renew it, link to it nor store a response in it."""

    pk: int
    token: str

    def _mine(self):
        return IdempotencyRecord.objects.filter(pk=self.pk, claim_token=self.token, response_status__isnull=True)

    def link(self, obj: models.Model) -> None:
        """Record on the claim what the request created or acted on. Call it inside the transaction
        that commits that change, so both commit or neither. Raises KeyInProgress (and so rolls
        that transaction back) if the lease lapsed and a retry took the key over meanwhile."""
        linked = self._mine().update(linked_type=ContentType.objects.get_for_model(obj), linked_id=str(obj.pk))
        if not linked:
            raise KeyInProgress(settings.PGI_IDEMPOTENCY_LEASE_SECONDS)

    def store(self, response) -> None:
        self._mine().update(response_status=response.status_code, response_body=_render(response))

    def abandon(self) -> None:
        """The view left without a response (the process is stopping). With nothing linked the key
        is released; otherwise the lease ends now, so a retry answers from what was linked."""
        released, _ = self._mine().filter(linked_id="").delete()
        if not released:
            self._mine().update(lease_expires_at=timezone.now())


class _Heartbeat:
    """Renews the leases of the claims this process holds, in one UPDATE, each a third of the lease
    after its last renewal, so a request faster than that costs no query.

    One daemon thread per process, started on first use (again in a forked child, which has none of
    its parent's threads). It dies with its process, which is the point: a killed worker stops
    renewing and its claims lapse. The thread closes its connection after each renewal.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._due: dict[Claim, float] = {}
        self._pid: int | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def _interval() -> float:
        return settings.PGI_IDEMPOTENCY_LEASE_SECONDS / 3

    def hold(self, claim: Claim) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._pid, self._due, self._thread = os.getpid(), {}, None
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="idempotency-leases", daemon=True)
                self._thread.start()
            self._due[claim] = time.monotonic() + self._interval()

    def release(self, claim: Claim) -> None:
        with self._lock:
            self._due.pop(claim, None)

    def _run(self) -> None:
        while True:
            time.sleep(min(1.0, self._interval()))
            now = time.monotonic()
            with self._lock:
                due = [claim for claim, at in self._due.items() if at <= now]
                for claim in due:
                    self._due[claim] = now + self._interval()
            if due:
                self._renew(due)

    @staticmethod
    def _renew(claims: list[Claim]) -> None:
        mine = Q()
        for claim in claims:
            mine |= Q(pk=claim.pk, claim_token=claim.token)
        try:
            IdempotencyRecord.objects.filter(mine, response_status__isnull=True).update(
                lease_expires_at=timezone.now() + _lease()
            )
        except DatabaseError:  # a database hiccup: the next renewal may still come before the lease lapses
            logger.exception("renewing %d idempotency leases failed", len(claims))
        finally:
            connection.close()


_heartbeat = _Heartbeat()


def _claim(*, scope: str, key: str, fingerprints: tuple[str, ...], method: str, path: str) -> Claim | IdempotencyRecord:
    """Take the key for this request (a Claim), or return the record of the request that holds it."""
    for _ in range(3):
        now = timezone.now()
        token = secrets.token_hex(16)
        claimed = {
            "claim_token": token,
            "lease_expires_at": now + _lease(),
            "expires_at": now + timedelta(hours=settings.PGI_IDEMPOTENCY_TTL_HOURS),
        }
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    scope=scope, key=key, request_hash=fingerprints[0], method=method, path=path, **claimed
                )
            return Claim(record.pk, token)
        except IntegrityError:
            pass
        existing = IdempotencyRecord.objects.filter(scope=scope, key=key).first()
        if existing is None:
            continue  # released between our insert and our read: try once more
        if existing.expires_at <= now:
            IdempotencyRecord.objects.filter(pk=existing.pk, expires_at__lte=now).delete()
            continue
        if existing.request_hash in fingerprints and existing.lapsed(now) and not existing.linked_id:
            # Its request died before it created anything: one retry takes the key over and runs.
            # The conditions are checked again by the UPDATE, under the row lock, so of two retries
            # only one gets the key, and none while the dying request's link is being committed.
            taken = IdempotencyRecord.objects.filter(
                pk=existing.pk,
                claim_token=existing.claim_token,
                response_status__isnull=True,
                linked_id="",
                lease_expires_at__lte=now,
            ).update(**claimed)
            if taken:
                logger.info("idempotency key %s/%s lapsed with nothing created; running it again", scope, key)
                return Claim(existing.pk, token)
            continue
        return existing
    raise KeyInProgress(1)


def _replay(status: int, body: str) -> HttpResponse:
    response = HttpResponse(body, status=status, content_type="application/json")
    response[REPLAY_HEADER] = "true"
    return response


def _answer_held(record: IdempotencyRecord, answer_linked) -> HttpResponse:
    """The answer to a retry of a request whose claim is still unanswered."""
    now = timezone.now()
    if not record.lapsed(now):
        raise KeyInProgress(_seconds_until(record.lease_expires_at))
    linked = record.linked if answer_linked else None
    if linked is None:  # another retry is taking the key over right now
        raise KeyInProgress(settings.PGI_IDEMPOTENCY_LEASE_SECONDS)
    response, final = answer_linked(linked)
    body = _render(response)
    if final:  # from now on every replay is this answer, whatever happens to the object later
        IdempotencyRecord.objects.filter(
            pk=record.pk, claim_token=record.claim_token, response_status__isnull=True
        ).update(response_status=response.status_code, response_body=body)
    return _replay(response.status_code, body)


def _abandon_after_database_error(claim: Claim) -> None:
    """The request lost its database connection (or the database): what it was writing rolled back.
    Abandon the claim on a new connection, so that a retry runs again (nothing linked) or answers
    from the payment the request committed before; with the database still away, the lease lapses."""
    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()
    try:
        claim.abandon()
    except DatabaseError:
        logger.warning("idempotency claim %s left to lapse: the database is unavailable", claim.pk)


def idempotency_link(request) -> Callable[[models.Model], None] | None:
    """What a view passes to a service as `link`, for it to call inside the transaction that
    creates (or claims) its object; None when the request has no Idempotency-Key."""
    return getattr(request, "_idempotency_link", None)


def idempotent(
    view_method=None,
    *,
    meaning: Callable | None = None,
    answer_linked: Callable[[models.Model], tuple[Response, bool]] | None = None,
):
    """Decorate an APIView's `post`: honours Idempotency-Key when the client sends one.

    `meaning(request)` is what a valid body means (defaults applied, values normalized), or None
    for a body that fails validation; a retry is compared on it, or on the body as sent. For a view
    whose service links an object (through `idempotency_link`), `answer_linked(obj)` is the view's
    response built from the object's current state, and whether that state is final (it is then
    stored for every later replay): the answer to a retry after the request crashed.
    """
    if view_method is None:
        return functools.partial(idempotent, meaning=meaning, answer_linked=answer_linked)

    @functools.wraps(view_method)
    def wrapper(view, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return view_method(view, request, *args, **kwargs)
        if not KEY_SHAPE.fullmatch(key):
            raise ValidationFailed(
                "Invalid Idempotency-Key.",
                details=[ErrorDetail(HEADER, "Must be 1 to 255 printable ASCII characters without spaces.")],
            )
        scope = scope_for(request.auth)
        as_sent = request_fingerprint(request.method, request.path, request.data)
        meant = meaning(request) if meaning else None
        # A record from before meanings were compared holds the as-sent fingerprint: it still matches.
        fingerprints = (as_sent,) if meant is None else (
            request_fingerprint(request.method, request.path, {"meaning": meant}),
            as_sent,
        )
        held = _claim(
            scope=scope, key=key, fingerprints=fingerprints, method=request.method, path=_stored_path(request.path)
        )
        if isinstance(held, IdempotencyRecord):
            if held.request_hash not in fingerprints:
                raise BusinessRuleViolation(
                    "This Idempotency-Key was used with another request.",
                    code="IDEMPOTENCY_KEY_REUSED",
                    details=[ErrorDetail(HEADER, "Use a new key for a new request.")],
                )
            if held.response_status is not None:
                return _replay(held.response_status, held.response_body)
            return _answer_held(held, answer_linked)

        request._idempotency_link = held.link
        _heartbeat.hold(held)
        try:
            try:
                response = view_method(view, request, *args, **kwargs)
            except Exception as exc:  # rendered exactly as DRF would, so that it can be stored
                if isinstance(exc, DATABASE_UNAVAILABLE):
                    raise
                response = view.handle_exception(exc)
            held.store(response)
        except DATABASE_UNAVAILABLE:
            # Not stored: a 503 replayed for 24 hours would hold the key for nothing.
            _abandon_after_database_error(held)
            raise
        except BaseException:
            held.abandon()
            raise
        finally:
            _heartbeat.release(held)
        return response

    return wrapper
