"""
`/api/v1/billing/packs/`, `/checkout/` and `/stripe/webhook/`: buying credits with Stripe Checkout.
The logic lives in apps.billing.payments; these views authenticate, validate and render.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.billing import payments
from apps.billing.api.serializers import Credits
from apps.users.api.base import ApiMixin

logger = logging.getLogger(__name__)


class PaymentsDisabled(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "payments_not_configured"
    default_detail = "Buying credits is not available on this server."


class PaymentProviderUnavailable(exceptions.APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_code = "payment_provider_error"
    default_detail = "The payment provider could not handle the request; try again later."


class InvalidWebhook(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_signature"


def _error(description: str) -> OpenApiResponse:
    # The `Error` component is added by apps.users.api.schema's hook.
    return OpenApiResponse(response={"$ref": "#/components/schemas/Error"}, description=description)


# --- Serializers ----------------------------------------------------------------------------------


class PackOutput(serializers.Serializer):
    id = serializers.CharField()
    credits = Credits(source="credits_micro", help_text="Credits in the pack, as an exact decimal string.")
    unit_amount = serializers.IntegerField(help_text="The price in the currency's smallest unit (cents).")
    currency = serializers.CharField(help_text="ISO 4217 code, lower case.")


class PacksOutput(serializers.Serializer):
    payments_enabled = serializers.BooleanField(help_text="False while the server has no Stripe keys.")
    packs = PackOutput(many=True)


class CheckoutInput(serializers.Serializer):
    pack = serializers.CharField(help_text="A pack id from `GET /billing/packs/`.")
    success_url = serializers.CharField(
        required=False,
        max_length=2000,
        help_text="Where Stripe sends the buyer after paying: an http(s) URL on this site. "
        "`{CHECKOUT_SESSION_ID}` is replaced by the session id.",
    )
    cancel_url = serializers.CharField(
        required=False, max_length=2000, help_text="Where Stripe sends the buyer who gives up: a URL on this site."
    )

    def validate_pack(self, value: str) -> str:
        try:
            return payments.credit_pack(value).id
        except payments.UnknownPack:
            known = ", ".join(pack.id for pack in payments.credit_packs())
            raise serializers.ValidationError(f"Unknown pack; choose one of: {known}.") from None

    def _on_this_site(self, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise serializers.ValidationError("Give an absolute http(s) URL.")
        if parts.netloc.lower() != self.context["request"].get_host().lower():
            raise serializers.ValidationError("The URL must be on this site.")
        return value

    validate_success_url = _on_this_site
    validate_cancel_url = _on_this_site


class CheckoutOutput(serializers.Serializer):
    id = serializers.CharField(help_text="The Stripe Checkout Session id.")
    url = serializers.URLField(help_text="Send the buyer here to pay.")


class WebhookReceived(serializers.Serializer):
    received = serializers.BooleanField()


# --- Views --------------------------------------------------------------------------------------------


class PacksView(ApiMixin, APIView):
    """The credit packs on sale, and whether this server can sell them."""

    @extend_schema(responses=PacksOutput)
    def get(self, request: Request) -> Response:
        data = {"payments_enabled": payments.payments_configured(), "packs": payments.credit_packs()}
        return Response(PacksOutput(data).data)


class CheckoutView(ApiMixin, APIView):
    """
    Start buying a pack: a Stripe Checkout Session to send the buyer to. The credits arrive when
    Stripe reports the payment (the webhook), not when this answers.
    """

    @extend_schema(
        request=CheckoutInput,
        responses={
            201: CheckoutOutput,
            502: _error("Stripe could not be reached or refused (`payment_provider_error`)."),
            503: _error("This server has no Stripe keys (`payments_not_configured`)."),
        },
    )
    def post(self, request: Request) -> Response:
        if not payments.payments_configured():
            raise PaymentsDisabled()
        given = CheckoutInput(data=request.data, context={"request": request})
        given.is_valid(raise_exception=True)
        back = request.build_absolute_uri(reverse("billing:overview"))
        try:
            session = payments.checkout_create(
                user=request.user,
                pack_id=given.validated_data["pack"],
                success_url=given.validated_data.get("success_url", f"{back}?checkout=success"),
                cancel_url=given.validated_data.get("cancel_url", f"{back}?checkout=cancelled"),
            )
        except payments.PaymentsNotConfigured:
            raise PaymentsDisabled() from None
        except payments.PaymentProviderError as failed:
            raise PaymentProviderUnavailable(str(failed)) from None
        return Response(CheckoutOutput(session).data, status=status.HTTP_201_CREATED)


class StripeWebhookView(APIView):
    """
    Stripe's signed events (checkout.session.completed, charge.refunded, charge.dispute.closed).
    Called by Stripe, not by clients: no credentials, no throttle, no Idempotency-Key; the
    `Stripe-Signature` header authenticates, and Stripe's object ids make repeats harmless.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        operation_id="billing_stripe_webhook",
        auth=[],
        request={"application/json": OpenApiTypes.OBJECT},
        parameters=[
            OpenApiParameter(
                "Stripe-Signature",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=True,
                description='`t=<unix time>,v1=<HMAC-SHA256 of "<t>.<body>" with the endpoint\'s signing secret>`.',
            ),
        ],
        responses={
            200: WebhookReceived,
            400: _error(
                "A missing, forged or stale signature (`invalid_signature`), or a body that is not "
                "a Stripe event (`invalid_payload`). Nothing is credited."
            ),
            502: _error("Stripe had to be asked for the charge's refunds and could not be (Stripe retries)."),
            503: _error("This server has no Stripe keys (`payments_not_configured`)."),
        },
    )
    def post(self, request: Request) -> Response:
        try:
            outcome = payments.webhook_handle(payload=request.body, signature=request.headers.get("Stripe-Signature"))
        except payments.PaymentsNotConfigured:
            raise PaymentsDisabled() from None
        except payments.WebhookRefused as refused:
            raise InvalidWebhook(str(refused), code=refused.code) from None
        except payments.PaymentProviderError as failed:
            raise PaymentProviderUnavailable(str(failed)) from None
        logger.debug("stripe webhook handled: %s", outcome)
        return Response(WebhookReceived({"received": True}).data)
