"""Writing the audit trail. Called by the services that carry out staff actions, inside the
transaction of the change: the event commits with the change or not at all, and an event that
cannot be written rolls the change back."""

from django.db import models, transaction

from .actors import Actor
from .models import AuditEvent
from .snapshot import plain


class NotInTransaction(RuntimeError):
    """audit_record was called outside a transaction: its event could commit without the change."""


def audit_record(
    *,
    actor: Actor | None,
    action: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    before: dict | None = None,
    after: dict | None = None,
    note: str = "",
) -> AuditEvent | None:
    """Record that `actor` did `action` to `obj` (or to the object named by object_type and
    object_id), with the fields it changed as they were (`before`) and became (`after`).

    `actor` None: no staff action (the API, a scheduled job), nothing is recorded and None is
    returned. Raises NotInTransaction outside transaction.atomic: the caller opens the transaction
    of its change and records in it."""
    if actor is None:
        return None
    if not transaction.get_connection().in_atomic_block:
        raise NotInTransaction("Record an audit event inside the transaction of the change.")
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
        object_repr = object_repr or str(obj)
    return AuditEvent.objects.create(
        actor_id=actor.user_id,
        actor_username=actor.username[:200],
        via=actor.via[:100],
        source_ip=actor.source_ip,
        action=action,
        object_type=object_type,
        object_id=str(object_id)[:64],
        object_repr=object_repr[:200],
        before=plain(before),
        after=plain(after),
        note=note[:500],
    )


def audit_record_each(
    *,
    actor: Actor | None,
    action: str,
    object_type: str,
    object_ids: list,
    before: dict | None = None,
    after: dict | None = None,
    note: str = "",
) -> int:
    """One event per id for the same action on many objects (exceptions resolved together), written
    in one statement. Returns how many; 0 and nothing written when `actor` is None. Raises
    NotInTransaction as audit_record does."""
    if actor is None or not object_ids:
        return 0
    if not transaction.get_connection().in_atomic_block:
        raise NotInTransaction("Record an audit event inside the transaction of the change.")
    common = dict(
        actor_id=actor.user_id, actor_username=actor.username[:200], via=actor.via[:100], source_ip=actor.source_ip,
        action=action, object_type=object_type, before=plain(before), after=plain(after), note=note[:500],
    )  # fmt: skip
    events = AuditEvent.objects.bulk_create(
        [AuditEvent(object_id=str(pk)[:64], object_repr=f"{object_type} {pk}"[:200], **common) for pk in object_ids],
        batch_size=1000,
    )
    return len(events)
