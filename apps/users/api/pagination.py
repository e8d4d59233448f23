from __future__ import annotations

from rest_framework.pagination import CursorPagination


class NewestFirst(CursorPagination):
    """Stable under inserts: a cursor, not an offset. `?page_size=` from 1 to 100 (default 25)."""

    ordering = ("-created_at", "-pk")
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100
