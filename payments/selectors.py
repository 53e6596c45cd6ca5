from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.db import connections
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from pgi.errors import NotFound
from pgi.ids import is_id
from pgi.merchants.models import Merchant
from pgi.merchants.principals import Principal
from pgi.money import quantize

from .models import PAYMENT_ID_PREFIX, GatewayOperation, OperationKind, Payment, PaymentStatus

# Columns that apps above payments add to its API's rows without payments importing them (the
# settlement id: settlements.apps): {name: a function returning the expression}. Each is part of the
# list's own query, so a page stays one query.
_LIST_ANNOTATIONS: dict[str, Callable[[], object]] = {}


def payment_annotation_register(name: str, expression: Callable[[], object]) -> None:
    _LIST_ANNOTATIONS[name] = expression


def payment_list(*, principal: Principal | None, merchant: Merchant | None = None) -> QuerySet[Payment]:
    """The payments the caller may see: its merchant's, or every merchant's for a platform key
    (`merchant` instead of a principal: that merchant's)."""
    if principal is not None and principal.is_platform:
        qs = Payment.objects.select_related("merchant")
    else:
        # Through the merchant's related manager: each payment read knows that merchant instance
        # (Django's known related objects), so a page needs no join and builds no merchants.
        qs = (merchant if principal is None else principal.merchant).payments.all()
    qs = qs.with_pending_operation()
    if _LIST_ANNOTATIONS:
        qs = qs.annotate(**{name: make() for name, make in _LIST_ANNOTATIONS.items()})
    return qs


def payment_id_check(*, payment_id: str) -> None:
    """Raises NotFound, without a query, for an id no payment can have (see pgi.ids): an unbounded
    path segment is refused before anything (an Idempotency-Key claim, a query) stores or sends it."""
    if not is_id(payment_id, PAYMENT_ID_PREFIX):
        raise NotFound("No payment with this id.", code="PAYMENT_NOT_FOUND")


def payment_get(*, principal: Principal, payment_id: str) -> Payment:
    """Raises NotFound for a payment that does not exist or that the caller may not see."""
    payment_id_check(payment_id=payment_id)
    if principal.is_platform:
        payment = payment_list(principal=principal).filter(pk=payment_id).first()
    else:
        payment = _payment_of_merchant(merchant=principal.merchant, payment_id=payment_id)
    if payment is None:
        raise NotFound(f"No payment {payment_id}.", code="PAYMENT_NOT_FOUND")
    return payment


# payment_get's query for a merchant's key, built by the ORM once per process and then run as SQL:
# building it (the pendingOperation and settlementId subqueries, the filters) cost the ORM about
# 2 ms of CPU per request, several times what PostgreSQL spends answering it; reading the row back
# through a RawQuerySet (which looks up every column's description per query) cost another 0.7 ms.
# The row is read as the ORM would read it (its compiler's column order and converters, then
# Model.from_db). The merchant is the key's own (from the lookup cache), so the query needs no join.
@dataclass(frozen=True)
class _CompiledById:
    sql: str
    params: tuple
    at_merchant: int  # where, in params, the merchant's id and the payment's id go
    at_id: int
    fields: slice  # the payment's own columns in the row, in the order of attnames
    attnames: list[str]
    annotations: tuple[tuple[str, int], ...]  # (attribute, column)
    converters: tuple[tuple[int, tuple, object], ...]  # (column, functions, expression)


_BY_ID_SQL: dict[tuple[str, ...], _CompiledById | None] = {}
_MERCHANT_MARK = -7_391_004_207  # stand-ins, found in the compiled parameters by value
_ID_MARK = "pgi-compiled-payment-id-mark"


def _compile_by_id(names: tuple[str, ...]) -> _CompiledById | None:
    qs = Payment.objects.with_pending_operation()
    if names:
        qs = qs.annotate(**{name: _LIST_ANNOTATIONS[name]() for name in names})
    qs = qs.filter(merchant_id=_MERCHANT_MARK, pk=_ID_MARK).order_by()
    compiler = qs.query.get_compiler(using=qs.db)
    sql, params = compiler.as_sql()
    params = tuple(params)
    info = compiler.klass_info
    if params.count(_MERCHANT_MARK) != 1 or params.count(_ID_MARK) != 1 or info is None:  # never seen
        return None
    select = compiler.select
    first, last = info["select_fields"][0], info["select_fields"][-1] + 1
    converters = compiler.get_converters([column[0] for column in select])
    return _CompiledById(
        sql=sql,
        params=params,
        at_merchant=params.index(_MERCHANT_MARK),
        at_id=params.index(_ID_MARK),
        fields=slice(first, last),
        attnames=[column[0].target.attname for column in select[first:last]],
        annotations=tuple((alias, position) for alias, position in compiler.annotation_col_map.items()),
        converters=tuple((position, tuple(functions), expression) for position, (functions, expression) in converters.items()),
    )


def _payment_of_merchant(*, merchant: Merchant, payment_id: str) -> Payment | None:
    """Exactly payment_list(...).filter(pk=payment_id).first() for a merchant's key."""
    names = tuple(_LIST_ANNOTATIONS)
    if names not in _BY_ID_SQL:
        _BY_ID_SQL[names] = _compile_by_id(names)
    compiled = _BY_ID_SQL[names]
    if compiled is None:
        return payment_list(principal=None, merchant=merchant).filter(pk=payment_id).first()
    params = list(compiled.params)
    params[compiled.at_merchant], params[compiled.at_id] = merchant.pk, payment_id
    connection = connections[Payment.objects.db]
    with connection.cursor() as cursor:
        cursor.execute(compiled.sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    row = list(row)
    for position, functions, expression in compiled.converters:
        value = row[position]
        for convert in functions:
            value = convert(value, expression, connection)
        row[position] = value
    payment = Payment.from_db(connection.alias, compiled.attnames, row[compiled.fields])
    for alias, position in compiled.annotations:
        setattr(payment, alias, row[position])
    payment.merchant = merchant
    return payment


# Staff figures (the admin's index page). Counted and summed in SQL, one row per gateway and currency.

# The gateway said yes: the payment was authorized, whatever happened to it afterwards.
ACCEPTED = (
    PaymentStatus.AUTHORIZED,
    PaymentStatus.COMPLETED,
    PaymentStatus.CANCELLED,
    PaymentStatus.PARTIALLY_REFUNDED,
    PaymentStatus.REFUNDED,
)
# Money taken: the captured amount (all of it unless a capture took part).
CHARGED = (PaymentStatus.COMPLETED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED)


@dataclass(frozen=True)
class GatewayDayFigures:
    gateway: str
    currency: str
    payments: int
    accepted: int
    failed: int
    open: int  # Pending or Processing: no answer yet
    charged: Decimal  # with the currency's minor-unit digits

    @property
    def success_rate(self) -> Decimal | None:
        """Accepted out of the payments that have an answer, in per cent to one decimal; None before any."""
        decided = self.accepted + self.failed
        return None if not decided else (Decimal(100 * self.accepted) / decided).quantize(Decimal("0.1"))


def payment_day_figures(*, day: date) -> list[GatewayDayFigures]:
    """Payments created on `day` (a UTC day) per gateway and currency, ordered by both."""
    start = datetime.combine(day, time.min, tzinfo=dt_timezone.utc)
    rows = (
        Payment.objects.filter(created_at__gte=start, created_at__lt=start + timedelta(days=1))
        .order_by()
        .values("gateway", "currency")
        .annotate(
            payments=Count("pk"),
            accepted=Count("pk", filter=Q(status__in=ACCEPTED)),
            failed=Count("pk", filter=Q(status=PaymentStatus.FAILED)),
            open=Count("pk", filter=Q(status__in=(PaymentStatus.PENDING, PaymentStatus.PROCESSING))),
            charged=Sum(Coalesce("captured_amount", "amount"), filter=Q(status__in=CHARGED), default=Decimal(0)),
        )
        .order_by("gateway", "currency")
    )
    return [GatewayDayFigures(**{**row, "charged": quantize(row["charged"], row["currency"])}) for row in rows]


def payments_needing_attention() -> QuerySet[Payment]:
    """Flagged for staff, or still Processing after recovery's first look was due: oldest first."""
    return (
        Payment.objects.filter(
            Q(needs_attention=True)
            | Q(status=PaymentStatus.PROCESSING)
            & Exists(
                GatewayOperation.objects.pending()
                .filter(payment=OuterRef("pk"), kind=OperationKind.AUTHORIZE)
                .filter(Q(attempts__gte=1) | Q(next_look_at__lte=timezone.now()))
            )
        )
        .select_related("merchant")
        .order_by("created_at", "id")
    )
