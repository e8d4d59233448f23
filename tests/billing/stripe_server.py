"""
A loopback server speaking the part of Stripe's HTTP API that billing uses, and events signed as
Stripe signs them, so the real `stripe` client and `stripe.Webhook` code run in the tests.

    with StripeServer(api_key="sk_test_…") as server:
        settings.STRIPE_API_BASE = server.url
        ...
        server.requests[0]["form"]["line_items[0][price_data][unit_amount]"] == "1000"
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

_ids = itertools.count(1)


def stripe_id(prefix: str) -> str:
    """A fresh id shaped like Stripe's (`cs_test_…`, `pi_…`)."""
    return f"{prefix}_{next(_ids):06d}TestLoopback"


class StripeServer:
    """
    `POST /v1/checkout/sessions` (form-encoded, Bearer auth) answers a session object;
    `GET /v1/refunds?charge=…` answers the refunds a test put in `refunds[charge id]`.
    A wrong key is a 401 with Stripe's error body. Every request is kept in `requests`.
    """

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.refunds: dict[str, list[dict[str, Any]]] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server._handle(self)

            do_POST = do_GET

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type | None, value: BaseException | None, trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length).decode() if length else ""
        parts = urlsplit(handler.path)
        request = {
            "method": handler.command,
            "path": parts.path,
            "query": dict(parse_qsl(parts.query)),
            "headers": dict(handler.headers),
            "form": dict(parse_qsl(raw, keep_blank_values=True)),
        }
        self.requests.append(request)
        if handler.headers.get("Authorization") != f"Bearer {self.api_key}":
            status, body = 401, _error("invalid_request_error", "Invalid API Key provided: sk_****")
        elif (handler.command, parts.path) == ("POST", "/v1/checkout/sessions"):
            status, body = 200, _session(request["form"])
        elif (handler.command, parts.path) == ("GET", "/v1/refunds"):
            refunds = self.refunds.get(request["query"].get("charge", ""), [])
            status, body = 200, {"object": "list", "data": refunds, "has_more": False, "url": "/v1/refunds"}
        else:
            status, body = 404, _error("invalid_request_error", f"Unrecognized request URL ({parts.path}).")
        payload = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.send_header("Request-Id", stripe_id("req"))
        handler.end_headers()
        handler.wfile.write(payload)


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message}}


def _session(form: dict[str, str]) -> dict[str, Any]:
    session_id = stripe_id("cs_test")
    quantity = int(form.get("line_items[0][quantity]", "1"))
    amount = int(form.get("line_items[0][price_data][unit_amount]", "0")) * quantity
    return {
        "id": session_id,
        "object": "checkout.session",
        "mode": form.get("mode"),
        "status": "open",
        "payment_status": "unpaid",
        "amount_subtotal": amount,
        "amount_total": amount,
        "currency": form.get("line_items[0][price_data][currency]"),
        "client_reference_id": form.get("client_reference_id"),
        "customer_email": form.get("customer_email"),
        "metadata": {key[9:-1]: value for key, value in form.items() if key.startswith("metadata[")},
        "payment_intent": None,
        "success_url": form.get("success_url"),
        "cancel_url": form.get("cancel_url"),
        "url": f"https://checkout.stripe.com/c/pay/{session_id}",
        "livemode": False,
        "created": int(time.time()),
    }


# --- Events ---------------------------------------------------------------------------------------


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header Stripe sends: t=<time>,v1=HMAC-SHA256(secret, "<t>.<body>")."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event(kind: str, subject: dict[str, Any], event_id: str | None = None) -> bytes:
    """A webhook body as Stripe sends it (snapshot event), as bytes to sign."""
    body = {
        "id": event_id or stripe_id("evt"),
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "data": {"object": subject},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
    }
    return json.dumps(body).encode()


def paid_session(*, user_id: Any, pack: str, credits_micro: int, amount: int, **fields: Any) -> dict[str, Any]:
    """A completed, paid Checkout Session as our checkout created it."""
    return {
        "id": stripe_id("cs_test"),
        "object": "checkout.session",
        "mode": "payment",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": amount,
        "currency": "usd",
        "client_reference_id": str(user_id),
        "metadata": {"user_id": str(user_id), "pack": pack, "credits_micro": str(credits_micro)},
        "payment_intent": stripe_id("pi"),
        **fields,
    }


def refund(amount: int, status: str = "succeeded") -> dict[str, Any]:
    return {"id": stripe_id("re"), "object": "refund", "amount": amount, "currency": "usd", "status": status}


def charge(intent: str, amount: int, refunds: list[dict[str, Any]] | None) -> dict[str, Any]:
    """A refunded charge; `refunds=None` leaves the list out, as current API versions do."""
    body = {
        "id": stripe_id("ch"),
        "object": "charge",
        "amount": amount,
        "amount_refunded": sum(item["amount"] for item in refunds or []),
        "currency": "usd",
        "payment_intent": intent,
        "refunded": False,
    }
    if refunds is not None:
        body["refunds"] = {"object": "list", "data": refunds, "has_more": False}
    return body


def dispute(intent: str, amount: int, status: str) -> dict[str, Any]:
    return {
        "id": stripe_id("dp"),
        "object": "dispute",
        "amount": amount,
        "currency": "usd",
        "charge": stripe_id("ch"),
        "payment_intent": intent,
        "status": status,
    }
