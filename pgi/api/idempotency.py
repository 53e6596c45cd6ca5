"""`Idempotency-Key` for POST views: the first response is stored and replayed for 24 hours.

Claiming a key is an INSERT under a unique constraint, committed before the view runs, so of any
number of concurrent requests with one key exactly one runs; the others get 409. The same key with
another body is refused with 422. Every response the view gives, 4xx and 5xx alike, is kept and
replayed as it was: a 5xx may come after the payment was created or even charged, so running the
request again could take the money twice. Only an error that leaves no response releases the key.
"""

import functools
import hashlib
import re
from datetime import timedelta
from decimal import Decimal

import simplejson
from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone

from .errors import BusinessRuleViolation, Conflict, ErrorDetail, ValidationFailed
from .models import IdempotencyRecord
from .renderers import DecimalJSONRenderer

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
KEY_SHAPE = re.compile(r"^[\x21-\x7e]{1,255}$")


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


def _claim(*, scope: str, key: str, fingerprint: str, method: str, path: str) -> IdempotencyRecord | None:
    """Insert the record; None if this request now owns the key, else the record that owns it."""
    now = timezone.now()
    for _ in range(2):
        try:
            with transaction.atomic():
                IdempotencyRecord.objects.create(
                    scope=scope,
                    key=key,
                    request_hash=fingerprint,
                    method=method,
                    path=path,
                    expires_at=now + timedelta(hours=settings.PGI_IDEMPOTENCY_TTL_HOURS),
                )
            return None
        except IntegrityError:
            existing = IdempotencyRecord.objects.filter(scope=scope, key=key).first()
            if existing is None:
                continue  # released between our insert and our read: try once more
            if existing.expires_at <= now:
                IdempotencyRecord.objects.filter(pk=existing.pk, expires_at__lte=now).delete()
                continue
            return existing
    raise Conflict("The idempotency key is busy; retry.", code="IDEMPOTENCY_IN_PROGRESS")


def _replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(record.response_body, status=record.response_status, content_type="application/json")
    response[REPLAY_HEADER] = "true"
    return response


def idempotent(view_method):
    """Decorate an APIView's `post`: honours Idempotency-Key when the client sends one."""

    @functools.wraps(view_method)
    def wrapper(view, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return view_method(view, request, *args, **kwargs)
        if not KEY_SHAPE.match(key):
            raise ValidationFailed(
                "Invalid Idempotency-Key.",
                details=[ErrorDetail(HEADER, "Must be 1 to 255 printable ASCII characters without spaces.")],
            )
        scope = scope_for(request.auth)
        fingerprint = request_fingerprint(request.method, request.path, request.data)
        existing = _claim(scope=scope, key=key, fingerprint=fingerprint, method=request.method, path=request.path)
        if existing is not None:
            if existing.request_hash != fingerprint:
                raise BusinessRuleViolation(
                    "This Idempotency-Key was used with another request.",
                    code="IDEMPOTENCY_KEY_REUSED",
                    details=[ErrorDetail(HEADER, "Use a new key for a new request.")],
                )
            if existing.response_status is None:
                raise Conflict(
                    "A request with this Idempotency-Key is still being processed.", code="IDEMPOTENCY_IN_PROGRESS"
                )
            return _replay(existing)

        try:
            try:
                response = view_method(view, request, *args, **kwargs)
            except Exception as exc:  # rendered exactly as DRF would, so that it can be stored
                response = view.handle_exception(exc)
        except BaseException:
            IdempotencyRecord.objects.filter(scope=scope, key=key).delete()
            raise
        IdempotencyRecord.objects.filter(scope=scope, key=key).update(
            response_status=response.status_code,
            response_body=DecimalJSONRenderer().render(response.data).decode(),
        )
        return response

    return wrapper
