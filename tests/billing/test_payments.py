"""
Buying credits with Stripe Checkout: the session sent to (a loopback) Stripe, and what Stripe's
signed webhooks do to the ledger: a paid checkout credits once, refunds and lost disputes take back
their share once, and anything not signed by Stripe changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest
from django.db import connection
from django.test import Client

from apps.billing import services
from apps.billing.models import MICRO, CreditTransaction
from apps.users.services import api_key_create
from tests.api.conftest import ApiClient, error
from tests.billing import stripe_server as stripe
from tests.factories import UserFactory
from tests.support.services import closing_connections

pytestmark = pytest.mark.django_db

SECRET_KEY = "sk_test_51LoopbackSecretKeyNeverLogged"
WEBHOOK_SECRET = "whsec_LoopbackSigningSecretNeverLogged"
WEBHOOK = "/api/v1/billing/stripe/webhook/"
CHECKOUT = "/api/v1/billing/checkout/"
# The "builder" pack of BILLING_CREDIT_PACKS: 50 credits for 45.00 USD.
BUILDER = {"pack": "builder", "credits_micro": 50 * MICRO, "amount": 4500}


@pytest.fixture
def server(settings):
    with stripe.StripeServer(api_key=SECRET_KEY) as loopback:
        settings.STRIPE_SECRET_KEY = SECRET_KEY
        settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
        settings.STRIPE_API_BASE = loopback.url
        yield loopback


@pytest.fixture
def no_keys(settings):
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_WEBHOOK_SECRET = ""


@pytest.fixture
def buyer():
    return UserFactory(username="buyer")


@pytest.fixture
def api(buyer) -> ApiClient:
    return ApiClient(api_key_create(owner=buyer, name="k", scopes=["read", "write"])[1])


def deliver(body: bytes, *, signature: str | None = None, client: Client | None = None):
    """POST a webhook as Stripe does; signed now with the endpoint's secret unless told otherwise."""
    headers = {"Stripe-Signature": stripe.sign(body, WEBHOOK_SECRET) if signature is None else signature}
    # Stripe sends no CSRF token: the endpoint must not need one.
    client = client or Client(enforce_csrf_checks=True)
    return client.post(WEBHOOK, body, content_type="application/json", headers=headers)


def paid(user, **fields) -> dict:
    return stripe.paid_session(user_id=user.pk, **{**BUILDER, **fields})


def bought(user) -> dict:
    """A builder pack paid for and credited: the session Stripe reported."""
    session = paid(user)
    assert deliver(stripe.event("checkout.session.completed", session)).status_code == 200
    assert services.balance_of(user) == 50 * MICRO
    return session


def rows(user, kind: str | None = None) -> list[CreditTransaction]:
    found = CreditTransaction.objects.filter(user=user)
    return list(found.filter(kind=kind) if kind else found)


# --- Packs and checkout -------------------------------------------------------------------------------


def test_the_packs_are_listed_with_exact_credits_and_prices_with_or_without_stripe(api, settings, no_keys):
    body = api.get("/api/v1/billing/packs/").json()
    assert body["payments_enabled"] is False
    assert body["packs"][1] == {"id": "builder", "credits": "50", "unit_amount": 4500, "currency": "usd"}
    assert [pack["id"] for pack in body["packs"]] == ["starter", "builder", "team"]
    settings.STRIPE_SECRET_KEY, settings.STRIPE_WEBHOOK_SECRET = SECRET_KEY, WEBHOOK_SECRET
    assert api.get("/api/v1/billing/packs/").json()["payments_enabled"] is True


def test_checkout_sends_stripe_a_session_for_the_pack_and_credits_nothing_yet(api, buyer, server):
    response = api.post(CHECKOUT, {"pack": "builder"})
    assert response.status_code == 201, response.content
    assert response.json() == {
        "id": response.json()["id"],
        "url": f"https://checkout.stripe.com/c/pay/{response.json()['id']}",
    }
    [sent] = server.requests
    assert (sent["method"], sent["path"]) == ("POST", "/v1/checkout/sessions")
    assert sent["headers"]["Authorization"] == f"Bearer {SECRET_KEY}"
    form = sent["form"]
    assert form["mode"] == "payment"
    assert form["line_items[0][quantity]"] == "1"
    assert form["line_items[0][price_data][unit_amount]"] == "4500"
    assert form["line_items[0][price_data][currency]"] == "usd"
    assert "50" in form["line_items[0][price_data][product_data][name]"]
    assert form["client_reference_id"] == str(buyer.pk)
    assert form["metadata[user_id]"] == str(buyer.pk)
    assert form["metadata[pack]"] == "builder"
    assert form["metadata[credits_micro]"] == str(50 * MICRO)
    assert form["success_url"] == "http://testserver/billing/?checkout=success"
    assert form["cancel_url"] == "http://testserver/billing/?checkout=cancelled"
    assert rows(buyer) == []


def test_checkout_accepts_return_urls_on_this_site_only(api, server):
    foreign = api.post(CHECKOUT, {"pack": "starter", "success_url": "https://evil.example/thanks"})
    assert (foreign.status_code, list(error(foreign)["fields"])) == (400, ["success_url"])
    lookalike = api.post(CHECKOUT, {"pack": "starter", "cancel_url": "http://testserver.evil.example/"})
    assert (lookalike.status_code, list(error(lookalike)["fields"])) == (400, ["cancel_url"])
    relative = api.post(CHECKOUT, {"pack": "starter", "success_url": "/accounts/profile/"})
    assert (relative.status_code, list(error(relative)["fields"])) == (400, ["success_url"])
    assert server.requests == []
    own = "http://testserver/done?session={CHECKOUT_SESSION_ID}"
    assert api.post(CHECKOUT, {"pack": "starter", "success_url": own}).status_code == 201
    assert server.requests[0]["form"]["success_url"] == own


def test_an_unknown_pack_is_400_naming_the_field(api, server):
    response = api.post(CHECKOUT, {"pack": "mega"})
    assert (response.status_code, list(error(response)["fields"])) == (400, ["pack"])
    assert "starter, builder, team" in error(response)["message"]
    assert server.requests == []


def test_checkout_needs_the_write_scope(buyer, server):
    reader = ApiClient(api_key_create(owner=buyer, name="r", scopes=["read"])[1])
    response = reader.post(CHECKOUT, {"pack": "starter"})
    assert (response.status_code, error(response)["code"]) == (403, "missing_scope")
    assert Client().post(CHECKOUT, {"pack": "starter"}, content_type="application/json").status_code in {401, 403}
    assert server.requests == []


def test_stripe_refusing_checkout_is_502_and_the_key_is_neither_answered_nor_logged(api, server, caplog):
    server.api_key = "sk_test_the_one_stripe_knows"
    with caplog.at_level(logging.DEBUG):
        response = api.post(CHECKOUT, {"pack": "starter"})
    assert (response.status_code, error(response)["code"]) == (502, "payment_provider_error")
    assert len(server.requests) == 1  # a 401 is not retried
    assert SECRET_KEY not in response.content.decode()
    assert "AuthenticationError" in caplog.text
    assert SECRET_KEY not in caplog.text
    assert SECRET_KEY[-4:] not in caplog.text


def test_without_stripe_keys_checkout_and_webhook_are_503_and_the_rest_of_billing_works(api, buyer, no_keys):
    checkout = api.post(CHECKOUT, {"pack": "starter"})
    assert (checkout.status_code, error(checkout)["code"]) == (503, "payments_not_configured")
    assert "not available" in error(checkout)["message"]
    webhook = deliver(stripe.event("checkout.session.completed", paid(buyer)))
    assert (webhook.status_code, error(webhook)["code"]) == (503, "payments_not_configured")
    assert rows(buyer) == []
    assert api.get("/api/v1/billing/balance/").json() == {"balance": "0", "balance_micro_credits": 0}
    assert api.get("/api/v1/billing/transactions/").status_code == 200


# --- Webhook: top-ups ------------------------------------------------------------------------------------


def test_a_paid_checkout_credits_its_pack_once_however_often_and_by_whatever_event_it_comes(buyer, server):
    session = paid(buyer)
    body = stripe.event("checkout.session.completed", session)
    first = deliver(body)
    assert (first.status_code, first.json()) == (200, {"received": True})
    assert deliver(body).status_code == 200  # Stripe delivers the same event again
    assert deliver(stripe.event("checkout.session.completed", session)).status_code == 200  # another event id
    assert deliver(stripe.event("checkout.session.async_payment_succeeded", session)).status_code == 200
    [top_up] = rows(buyer)
    assert (top_up.kind, top_up.amount, top_up.balance_after) == ("topup", 50 * MICRO, 50 * MICRO)
    assert "builder pack" in top_up.description
    assert session["payment_intent"] in top_up.description
    assert top_up.idempotency_key == (f"stripe:pi:{session['payment_intent']}:checkout:{session['id']}:paid:4500")
    assert services.balance_of(buyer) == 50 * MICRO


def test_a_session_completed_unpaid_credits_only_when_its_payment_succeeds(buyer, server):
    session = paid(buyer, payment_status="unpaid")
    assert deliver(stripe.event("checkout.session.completed", session)).status_code == 200
    assert rows(buyer) == []
    succeeded = stripe.event("checkout.session.async_payment_succeeded", {**session, "payment_status": "paid"})
    assert deliver(succeeded).status_code == 200
    assert services.balance_of(buyer) == 50 * MICRO


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(lambda body: stripe.sign(body, "whsec_someone_else"), id="wrong-secret"),
        pytest.param(lambda body: stripe.sign(body, WEBHOOK_SECRET, int(time.time()) - 301), id="stale"),
        pytest.param(lambda body: f"t={int(time.time())},v1={'0' * 64}", id="forged"),
        pytest.param(lambda body: stripe.sign(body, WEBHOOK_SECRET).replace("v1=", "v0="), id="other-scheme"),
        pytest.param(lambda body: "", id="missing"),
        pytest.param(lambda body: "garbage", id="malformed"),
    ],
)
def test_a_delivery_not_signed_by_stripe_is_400_and_credits_nothing(buyer, server, signature, caplog):
    body = stripe.event("checkout.session.completed", paid(buyer))
    header = signature(body)
    client = Client(enforce_csrf_checks=True)
    with caplog.at_level(logging.DEBUG):
        response = (
            client.post(WEBHOOK, body, content_type="application/json")
            if header == ""
            else deliver(body, signature=header, client=client)
        )
    assert (response.status_code, error(response)["code"]) == (400, "invalid_signature")
    assert rows(buyer) == []
    assert WEBHOOK_SECRET not in caplog.text
    assert not header or header not in caplog.text


def test_a_body_changed_after_signing_is_400(buyer, server):
    body = stripe.event("checkout.session.completed", paid(buyer))
    signature = stripe.sign(body, WEBHOOK_SECRET)
    inflated = body.replace(str(50 * MICRO).encode(), str(5000 * MICRO).encode())
    response = deliver(inflated, signature=signature)
    assert (response.status_code, error(response)["code"]) == (400, "invalid_signature")
    assert deliver(body, signature=signature).status_code == 200  # the original still is Stripe's
    assert services.balance_of(buyer) == 50 * MICRO


def test_a_recent_signature_within_the_tolerance_is_accepted(buyer, server):
    body = stripe.event("checkout.session.completed", paid(buyer))
    assert deliver(body, signature=stripe.sign(body, WEBHOOK_SECRET, int(time.time()) - 240)).status_code == 200
    assert services.balance_of(buyer) == 50 * MICRO


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"\xff\xfe"], ids=["text", "list", "not-utf8"])
def test_a_signed_body_that_is_not_an_event_is_400(server, body):
    response = deliver(body, signature=stripe.sign(body, WEBHOOK_SECRET) if body != b"\xff\xfe" else "t=1,v1=00")
    assert (response.status_code, error(response)["code"]) == (400, "invalid_payload")
    assert not CreditTransaction.objects.exists()


def test_unknown_users_payments_and_event_types_are_acknowledged_and_change_nothing(buyer, server, caplog):
    with caplog.at_level(logging.INFO, logger="apps.billing.payments"):
        stranger = deliver(
            stripe.event(
                "checkout.session.completed",
                paid(
                    buyer,
                    client_reference_id="987654",
                    metadata={"user_id": "987654", "pack": "builder", "credits_micro": str(50 * MICRO)},
                ),
            )
        )
        not_ours = deliver(
            stripe.event("checkout.session.completed", {**paid(buyer), "metadata": {}, "client_reference_id": None})
        )
        refund = deliver(
            stripe.event("charge.refunded", stripe.charge(stripe.stripe_id("pi"), 4500, [stripe.refund(4500)]))
        )
        lost = deliver(stripe.event("charge.dispute.closed", stripe.dispute(stripe.stripe_id("pi"), 4500, "lost")))
        other = deliver(stripe.event("customer.created", {"id": "cus_1", "object": "customer"}))
    assert [r.status_code for r in (stranger, not_ours, refund, lost, other)] == [200] * 5
    assert other.json() == {"received": True}
    assert not CreditTransaction.objects.exists()
    assert "unknown user '987654'" in caplog.text
    assert "credited nothing here" in caplog.text


# --- Webhook: refunds and disputes ------------------------------------------------------------------


def test_a_partial_refund_takes_back_its_share_once_and_the_full_refund_exactly_the_rest(buyer, server):
    session = bought(buyer)
    intent = session["payment_intent"]
    first = stripe.refund(1500)  # a third of 45.00
    partial = stripe.event("charge.refunded", stripe.charge(intent, 4500, [first]))
    assert deliver(partial).status_code == 200
    assert deliver(partial).status_code == 200
    [row] = rows(buyer, "refund")
    assert row.amount == -16_666_666  # 50 credits * 1500 / 4500, rounded towards the buyer
    assert row.idempotency_key == f"stripe:pi:{intent}:refund:{first['id']}:amount:1500"
    second = stripe.refund(3000)
    full = stripe.event("charge.refunded", stripe.charge(intent, 4500, [second, first]))
    assert deliver(full).status_code == 200
    assert deliver(full).status_code == 200
    assert sorted(row.amount for row in rows(buyer, "refund")) == [-33_333_334, -16_666_666]
    assert services.balance_of(buyer) == 0


def test_a_refund_the_event_does_not_list_is_asked_of_stripe(buyer, server):
    session = bought(buyer)
    refunded = stripe.charge(session["payment_intent"], 4500, refunds=None)
    server.refunds[refunded["id"]] = [stripe.refund(4500)]
    assert deliver(stripe.event("charge.refunded", refunded)).status_code == 200
    [asked] = server.requests
    assert (asked["method"], asked["path"], asked["query"]["charge"]) == ("GET", "/v1/refunds", refunded["id"])
    assert asked["headers"]["Authorization"] == f"Bearer {SECRET_KEY}"
    assert [row.amount for row in rows(buyer, "refund")] == [-50 * MICRO]
    assert services.balance_of(buyer) == 0


def test_a_refund_stripe_cannot_be_asked_about_is_502_so_stripe_retries(buyer, server):
    session = bought(buyer)
    refunded = stripe.charge(session["payment_intent"], 4500, refunds=None)
    server.refunds[refunded["id"]] = [stripe.refund(4500)]
    server.api_key = "sk_test_rolled"
    response = deliver(stripe.event("charge.refunded", refunded))
    assert (response.status_code, error(response)["code"]) == (502, "payment_provider_error")
    assert services.balance_of(buyer) == 50 * MICRO
    server.api_key = SECRET_KEY
    assert deliver(stripe.event("charge.refunded", refunded)).status_code == 200
    assert services.balance_of(buyer) == 0


def test_the_webhook_needs_no_credentials_csrf_token_or_throttle_allowance(buyer, server, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"principal": "2/min"}}
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(buyer)  # a session cookie must not bring CSRF checks with it
    answers = [deliver(stripe.event("customer.created", {"id": "cus_1"}), client=browser) for _ in range(4)]
    assert [answer.status_code for answer in answers] == [200] * 4
    assert deliver(stripe.event("checkout.session.completed", paid(buyer)), client=browser).status_code == 200
    assert services.balance_of(buyer) == 50 * MICRO


def test_failed_and_cancelled_refunds_take_nothing_back(buyer, server):
    session = bought(buyer)
    refunds = [stripe.refund(4500, status="failed"), stripe.refund(4500, status="canceled")]
    assert (
        deliver(stripe.event("charge.refunded", stripe.charge(session["payment_intent"], 4500, refunds))).status_code
        == 200
    )
    assert rows(buyer, "refund") == []
    assert services.balance_of(buyer) == 50 * MICRO


def test_a_lost_dispute_takes_back_the_disputed_share_once_and_a_won_one_nothing(buyer, server):
    session = bought(buyer)
    won = stripe.dispute(session["payment_intent"], 4500, "won")
    assert deliver(stripe.event("charge.dispute.closed", won)).status_code == 200
    assert services.balance_of(buyer) == 50 * MICRO
    lost = stripe.dispute(session["payment_intent"], 2250, "lost")
    body = stripe.event("charge.dispute.closed", lost)
    assert deliver(body).status_code == 200
    assert deliver(body).status_code == 200
    [row] = rows(buyer, "adjustment")
    assert (row.amount, row.idempotency_key) == (
        -25 * MICRO,
        f"stripe:pi:{session['payment_intent']}:dispute:{lost['id']}:amount:2250",
    )
    assert lost["id"] in row.description
    assert services.balance_of(buyer) == 25 * MICRO


def test_reversals_of_one_payment_never_take_back_more_than_it_credited(buyer, server):
    session = bought(buyer)
    intent = session["payment_intent"]
    assert deliver(stripe.event("charge.dispute.closed", stripe.dispute(intent, 4500, "lost"))).status_code == 200
    late_refund = stripe.event("charge.refunded", stripe.charge(intent, 4500, [stripe.refund(1500)]))
    assert deliver(late_refund).status_code == 200
    assert rows(buyer, "refund") == []
    assert services.balance_of(buyer) == 0


def test_reversals_are_posted_to_the_buyers_ledger_even_when_spent_below_zero(buyer, server):
    session = bought(buyer)
    services.ledger_post(user=buyer, kind="usage", amount=-45 * MICRO, idempotency_key="spent")
    refund = stripe.event("charge.refunded", stripe.charge(session["payment_intent"], 4500, [stripe.refund(4500)]))
    assert deliver(refund).status_code == 200
    assert services.balance_of(buyer) == -45 * MICRO
    assert rows(buyer)[0].balance_after == -45 * MICRO


# --- Concurrency ----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_twenty_simultaneous_deliveries_of_one_event_credit_once(settings):
    settings.STRIPE_SECRET_KEY, settings.STRIPE_WEBHOOK_SECRET = SECRET_KEY, WEBHOOK_SECRET
    buyer = UserFactory(username="racer")
    body = stripe.event("checkout.session.completed", paid(buyer))
    signature = stripe.sign(body, WEBHOOK_SECRET)
    statuses: list[int] = []
    gate = threading.Barrier(20)

    def deliver_at_once() -> None:
        client = Client()
        gate.wait()
        statuses.append(deliver(body, signature=signature, client=client).status_code)

    threads = [threading.Thread(target=closing_connections(deliver_at_once)) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert statuses == [200] * 20, connection.vendor
    assert len(rows(buyer, "topup")) == 1
    assert services.balance_of(buyer) == 50 * MICRO
