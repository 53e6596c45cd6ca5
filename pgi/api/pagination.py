import re

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination, _reverse_ordering

BASE64_TEXT = re.compile(r"[A-Za-z0-9+/]*={0,2}")
LIMIT_TEXT = re.compile(r"[0-9]{1,4}")


def _is_datetime(text: str) -> bool:
    try:
        return parse_datetime(text) is not None
    except ValueError:  # well-formed but impossible, such as month 13
        return False


class CreatedCursorPagination(CursorPagination):
    """Newest first, stable under concurrent inserts: the cursor encodes a position, not an offset."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200
    invalid_cursor_message = "The cursor is invalid or has been tampered with."

    def decode_cursor(self, request):
        encoded = request.query_params.get(self.cursor_query_param)
        try:
            cursor = super().decode_cursor(request)
        except NotFound as exc:  # a bad cursor is a bad request, not a missing page
            raise ValidationError({"cursor": [self.invalid_cursor_message]}) from exc
        # DRF's base64 decoding skips characters outside the alphabet and does not check the
        # position, which then reaches the query as a created_at value: a 500 instead of a 400.
        if cursor is not None and (
            not BASE64_TEXT.fullmatch(encoded) or (cursor.position is not None and not _is_datetime(cursor.position))
        ):
            raise ValidationError({"cursor": [self.invalid_cursor_message]})
        return cursor

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        # str.isdigit() is true for "²", which int() refuses: match ASCII digits only.
        if raw is not None and (not LIMIT_TEXT.fullmatch(raw) or not 1 <= int(raw) <= self.max_page_size):
            raise ValidationError({"limit": [f"Must be a whole number from 1 to {self.max_page_size}."]})
        return super().get_page_size(request)

    def paginate_queryset(self, queryset, request, view=None):
        """DRF's CursorPagination.paginate_queryset (3.18), with the page's query in page_rows: a
        paginator may read its page another way (payments.apis.PaymentPagination)."""
        self.request = request
        self.page_size = self.get_page_size(request)
        if not self.page_size:
            return None

        self.base_url = request.build_absolute_uri()
        self.ordering = self.get_ordering(request, queryset, view)

        self.cursor = self.decode_cursor(request)
        if self.cursor is None:
            (offset, reverse, current_position) = (0, False, None)
        else:
            (offset, reverse, current_position) = self.cursor

        results = self.page_rows(queryset, offset=offset, reverse=reverse, position=current_position)
        self.page = list(results[: self.page_size])

        # Determine the position of the final item following the page.
        if len(results) > len(self.page):
            has_following_position = True
            following_position = self._get_position_from_instance(results[-1], self.ordering)
        else:
            has_following_position = False
            following_position = None

        if reverse:
            # A reverse queryset's page is read in reverse order: put it back.
            self.page = list(reversed(self.page))
            self.has_next = (current_position is not None) or (offset > 0)
            self.has_previous = has_following_position
            if self.has_next:
                self.next_position = current_position
            if self.has_previous:
                self.previous_position = following_position
        else:
            self.has_next = has_following_position
            self.has_previous = (current_position is not None) or (offset > 0)
            if self.has_next:
                self.next_position = following_position
            if self.has_previous:
                self.previous_position = current_position

        if (self.has_previous or self.has_next) and self.template is not None:
            self.display_page_controls = True

        return self.page

    def page_order(self, reverse: bool) -> tuple[str, ...]:
        return tuple(_reverse_ordering(self.ordering)) if reverse else tuple(self.ordering)

    def page_position_lookup(self, position) -> str | None:
        """The filter a cursor's position adds (`created_at__lt`), as DRF writes it; None without one."""
        if position is None:
            return None
        order = self.ordering[0]
        # (cursor reversed) XOR (ordering reversed): before the position, else after it.
        return order.lstrip("-") + ("__lt" if self.cursor.reverse != order.startswith("-") else "__gt")

    def page_rows(self, queryset, *, offset: int, reverse: bool, position) -> list:
        """The page's rows and the one after it, as DRF queries them."""
        queryset = queryset.order_by(*self.page_order(reverse))
        lookup = self.page_position_lookup(position)
        if lookup is not None:
            queryset = queryset.filter(**{lookup: position})
        return list(queryset[offset : offset + self.page_size + 1])
