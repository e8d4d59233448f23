"""The billing page (the REST endpoints are in api/urls.py)."""

from django.urls import path

from apps.billing import pages

app_name = "billing"

urlpatterns = [
    path("", pages.overview, name="overview"),
    path("checkout/", pages.checkout, name="checkout"),
]
