from __future__ import annotations

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination


class NewestFirst(CursorPagination):
    """Stable under inserts: a cursor, not an offset. `?page_size=` from 1 to 100 (default 25)."""

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound:
            # A mangled cursor is a bad request, not a missing page.
            message = "Invalid cursor: use a `next` or `previous` link."
            raise ValidationError({self.cursor_query_param: [message]}) from None

    ordering = ("-created_at", "-pk")
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100
