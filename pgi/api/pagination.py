from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination


class CreatedCursorPagination(CursorPagination):
    """Newest first, stable under concurrent inserts: the cursor encodes a position, not an offset."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200
    invalid_cursor_message = "The cursor is invalid or has been tampered with."

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except Exception as exc:  # DRF raises NotFound; a bad cursor is a bad request, not a missing page.
            raise ValidationError({"cursor": [self.invalid_cursor_message]}) from exc

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is not None and (not raw.isdigit() or not 1 <= int(raw) <= self.max_page_size):
            raise ValidationError({"limit": [f"Must be a whole number from 1 to {self.max_page_size}."]})
        return super().get_page_size(request)
