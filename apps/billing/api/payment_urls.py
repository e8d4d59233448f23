from django.urls import path

from apps.billing.api import payments

urlpatterns = [
    path("billing/packs/", payments.PacksView.as_view(), name="billing-packs"),
    path("billing/checkout/", payments.CheckoutView.as_view(), name="billing-checkout"),
    path("billing/stripe/webhook/", payments.StripeWebhookView.as_view(), name="billing-stripe-webhook"),
]
