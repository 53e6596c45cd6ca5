from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.db import connections
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from pgi.compiled import CompiledSelect
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
        return _list_columns(Payment.objects.select_related("merchant"))
    merchant = merchant if principal is None else principal.merchant
    # Filtered as the merchant's related manager filters (merchant.payments.all()): each payment
    # read knows that merchant instance (Django's known related objects), so a page needs no join
    # and builds no merchants.
    qs = _merchant_list_base().filter(merchant=merchant)
    qs._known_related_objects = {_MERCHANT_FIELD: {merchant.pk: merchant}}
    return qs


def _list_columns(qs: QuerySet[Payment]) -> QuerySet[Payment]:
    qs = qs.with_pending_operation()
    if _LIST_ANNOTATIONS:
        qs = qs.annotate(**{name: make() for name, make in _LIST_ANNOTATIONS.items()})
    return qs


# A merchant's list before its merchant filter: its subqueries (pendingOperation, settlementId)
# built and resolved once per process, about 1.7 ms of CPU per list page before. Never evaluated:
# each page is a filtered copy.
_MERCHANT_LISTS: dict[tuple[str, ...], QuerySet[Payment]] = {}
_MERCHANT_FIELD = Payment._meta.get_field("merchant")


def _merchant_list_base() -> QuerySet[Payment]:
    names = tuple(_LIST_ANNOTATIONS)
    base = _MERCHANT_LISTS.get(names)
    if base is None:
        base = _MERCHANT_LISTS[names] = _list_columns(Payment.objects.all())
    return base


# A merchant's whole list, a page of it: compiled once per shape (ordering, cursor lookup, offset,
# page size) by pgi.compiled, with the merchant and the cursor's position as marks. Building and
# compiling the page query was about a quarter of a list page's CPU beside the rows.
_PAGES: dict[tuple, CompiledSelect] = {}
_PAGE_SHAPES = 64  # more shapes (offsets and page sizes a client chose) go through the ORM
_POSITION_MARK = datetime(2001, 2, 3, 4, 5, 6, 789012, tzinfo=dt_timezone.utc)


def payment_page(
    *, merchant: Merchant, ordering: tuple[str, ...], lookup: str | None, position, offset: int, count: int
) -> list[Payment]:
    """`payment_list(merchant=merchant).order_by(*ordering)`, filtered by `{lookup: position}` when
    a lookup is given, rows `offset` to `offset + count`: as CreatedCursorPagination.page_rows reads
    a page, each row knowing its merchant."""
    key = (tuple(_LIST_ANNOTATIONS), ordering, lookup, offset, count)
    compiled = _PAGES.get(key)
    if compiled is None:
        # The embedded SQLite database (make run) stores instants as text the ORM writes: its way.
        if len(_PAGES) >= _PAGE_SHAPES or connections[Payment.objects.db].vendor != "postgresql":
            page = payment_list(principal=None, merchant=merchant).order_by(*ordering)
            if lookup is not None:
                page = page.filter(**{lookup: position})
            return list(page[offset : offset + count])
        compiled = _PAGES.setdefault(key, _page_query(ordering, lookup, offset, count))
    if lookup is None:
        rows = compiled.rows(merchant.pk, using=Payment.objects.db)
    else:
        field = Payment._meta.get_field(lookup.split("__", 1)[0])
        rows = compiled.rows(merchant.pk, field.get_prep_value(position), using=Payment.objects.db)
    for row in rows:
        _MERCHANT_FIELD.set_cached_value(row, merchant)
    return rows


def _page_query(ordering: tuple[str, ...], lookup: str | None, offset: int, count: int) -> CompiledSelect:
    def build(merchant_id, position=None):
        qs = _merchant_list_base().filter(merchant_id=merchant_id).order_by(*ordering)
        if lookup is not None:
            qs = qs.filter(**{lookup: position})
        return qs[offset : offset + count]

    return CompiledSelect(build, marks=(_MERCHANT_MARK,) if lookup is None else (_MERCHANT_MARK, _POSITION_MARK))


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


# payment_get's query for a merchant's key, built and compiled by the ORM once per process
# (pgi.compiled): building it (the pendingOperation and settlementId subqueries, the filters) cost
# the ORM about 2 ms of CPU per request, several times what PostgreSQL spends answering it. The
# merchant is the key's own (from the lookup cache), so the query needs no join.
_BY_ID: dict[tuple[str, ...], CompiledSelect] = {}
_MERCHANT_MARK = -7_391_004_207  # stand-ins, found in the compiled parameters by value
_ID_MARK = "pgi-compiled-payment-id-mark"


def _by_id_query(names: tuple[str, ...]) -> CompiledSelect:
    def build(merchant_id, payment_id):
        qs = Payment.objects.with_pending_operation()
        if names:
            qs = qs.annotate(**{name: _LIST_ANNOTATIONS[name]() for name in names})
        return qs.filter(merchant_id=merchant_id, pk=payment_id).order_by()

    return CompiledSelect(build, marks=(_MERCHANT_MARK, _ID_MARK))


def _payment_of_merchant(*, merchant: Merchant, payment_id: str) -> Payment | None:
    """Exactly payment_list(...).filter(pk=payment_id).first() for a merchant's key."""
    names = tuple(_LIST_ANNOTATIONS)
    query = _BY_ID.get(names) or _BY_ID.setdefault(names, _by_id_query(names))
    found = query.rows(merchant.pk, payment_id, using=Payment.objects.db)
    if not found:
        return None
    (payment,) = found
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
