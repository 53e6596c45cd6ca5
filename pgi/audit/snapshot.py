"""A row as the audit trail records it: its fields as JSON values, secrets never by value.

`snapshot()` keeps the real values in memory so that `changes()` can tell a changed secret from an
unchanged one; only `changes()` and `shown()` produce what is stored, with each secret masked.
"""

import datetime as dt
import uuid
from decimal import Decimal

from django.db import models

SECRET = "[secret]"
SECRET_CHANGED = "[secret, changed]"
# A field whose name holds one of these is a secret: a password (hash), a key's hash, a signing
# secret, a token. Its value is never recorded; that it was set or changed is.
SECRET_PARTS = ("password", "secret", "key_hash", "token", "hmac")


def is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in SECRET_PARTS)


def plain(value):
    """A JSON value: money and times as text (exact), ids as they are, anything else as its str."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"[{len(value)} bytes]"
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    return str(value)


def fields_of(obj: models.Model) -> dict:
    """The concrete fields (a foreign key as the related id) and many-to-many fields (the related
    rows' names, sorted) of a saved row. Not the time of its last save (auto_now): the event's own
    time says it, and a save that changes nothing else is no change."""
    data = {}
    for field in obj._meta.concrete_fields:
        if getattr(field, "auto_now", False):
            continue
        if isinstance(field, models.BinaryField):
            value = field.value_from_object(obj)
            data[field.name] = None if value is None else f"[{len(value)} bytes]"
            continue
        data[field.name] = plain(field.value_from_object(obj))
    if obj.pk is not None:
        for field in obj._meta.many_to_many:
            data[field.name] = sorted(str(related) for related in getattr(obj, field.name).all())
    return data


def snapshot(obj: models.Model, related: dict[str, tuple[type[models.Model], str]] | None = None) -> dict:
    """`fields_of(obj)`, plus for each name in `related` the rows of (model, foreign key name) that
    point at it (a merchant's currencies and gateway routes, a fee plan's currencies), oldest first."""
    data = fields_of(obj)
    for name, (model, fk_name) in (related or {}).items():
        rows = model._default_manager.filter(**{fk_name: obj.pk}).order_by("pk") if obj.pk is not None else []
        data[name] = [{k: v for k, v in fields_of(row).items() if k != fk_name} for row in rows]
    return data


def _masked(name: str, value, marker: str = SECRET):
    if is_secret(name):
        return None if value in (None, "") else marker
    if isinstance(value, list):
        return [_masked_row(v) for v in value]
    return value


def _masked_row(value):
    if isinstance(value, dict):
        return {k: _masked(k, v) for k, v in value.items()}
    return value


def shown(data: dict | None) -> dict | None:
    """A snapshot as stored: every secret replaced by "[secret]" (or null when it is not set)."""
    if data is None:
        return None
    return {name: _masked(name, value) for name, value in data.items()}


def changes(before: dict, after: dict) -> tuple[dict, dict]:
    """The fields that differ, as they were and as they are, secrets masked ("[secret]" before,
    "[secret, changed]" after)."""
    names = [name for name in {**before, **after} if before.get(name) != after.get(name)]
    was = {name: _masked(name, before.get(name)) for name in names}
    now = {name: _masked(name, after.get(name), SECRET_CHANGED) for name in names}
    return was, now
