"""Pages of runs (the REST endpoints are in api/urls.py)."""

from django.urls import path

from apps.executions import pages

app_name = "executions"

urlpatterns = [
    path("", pages.dashboard, name="dashboard"),
    path("runs/", pages.execution_list, name="execution_list"),
    path("runs/<uuid:pk>/", pages.execution_detail, name="execution_detail"),
    path("runs/<uuid:pk>/cancel/", pages.execution_cancel, name="execution_cancel"),
    path("runs/<uuid:pk>/retry/", pages.execution_retry, name="execution_retry"),
]
