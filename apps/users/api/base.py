"""
What every API view shares, on top of DRF's settings (authentication, scopes, throttling, errors):
idempotent creation and the audit trail of writes.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.response import Response

from apps.users.api.idempotency import Claim, Replayed, idempotency_claim
from apps.users.models import ApiKey
from apps.users.services import audit_record


class ApiMixin:
    """
    Mix into every APIView / ViewSet. POSTs honour `Idempotency-Key`; successful writes leave an
    AuditEntry (who, what, which object, IP, request id). Views may set `action_scopes`
    (action -> scope) for actions that need `execute`.
    """

    action_scopes: dict[str, str] = {}
    _idempotency: Claim | None = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if request.method == "POST":
            self._idempotency = idempotency_claim(request)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, Replayed):
            return exc.response
        try:
            return super().handle_exception(exc)
        except Exception:
            # A server error skips finalize_response: release the claim here, or every repeat
            # with this key would be "still being handled" until the record expires.
            if self._idempotency is not None:
                self._idempotency.record.delete()
                self._idempotency = None
            raise

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        if self._idempotency is not None:
            self._idempotency.keep(response)
            self._idempotency = None
        replayed = response.has_header("Idempotent-Replayed")
        if request.method not in SAFE_METHODS and 200 <= response.status_code < 300 and not replayed:
            self._audit(request, response)
        return super().finalize_response(request, response, *args, **kwargs)

    def _audit(self, request: Request, response: Response) -> None:
        model = getattr(getattr(self, "queryset", None), "model", None)
        object_id = self.kwargs.get(getattr(self, "lookup_url_kwarg", None) or getattr(self, "lookup_field", "pk"))
        if object_id is None and isinstance(response.data, dict):
            object_id = response.data.get("id")
        name = getattr(self, "basename", None) or type(self).__name__
        audit_record(
            request=request._request,
            actor=request.user if request.user.is_authenticated else None,
            api_key=request.auth if isinstance(request.auth, ApiKey) else None,
            action=f"{name}.{getattr(self, 'action', None) or request.method.lower()}",
            object_type=model._meta.label_lower if model else "",
            object_id=str(object_id or ""),
            status_code=response.status_code,
        )
