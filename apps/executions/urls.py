"""Pages of runs (the REST endpoints are in api/urls.py)."""

from django.urls import path

from apps.executions import pages

app_name = "executions"

urlpatterns = [
    path("", pages.dashboard, name="dashboard"),
]
