from django.urls import include, path
from rest_framework.routers import SimpleRouter

from apps.billing.api import views

router = SimpleRouter()
router.register("billing/transactions", views.TransactionViewSet, basename="credit-transaction")

urlpatterns = [
    path("billing/balance/", views.BalanceView.as_view(), name="billing-balance"),
    path("billing/plan/", views.PlanView.as_view(), name="billing-plan"),
    path("", include("apps.billing.api.usage_urls")),
    path("", include("apps.billing.api.payment_urls")),
    *router.urls,
]
