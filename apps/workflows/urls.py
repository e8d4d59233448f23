"""Pages of workflows: the list, the visual builder, versions, the run form (the REST endpoints are in api/urls.py)."""

from django.urls import path

from apps.workflows import pages

app_name = "workflows"

urlpatterns = [
    path("", pages.workflow_list, name="workflow_list"),
    path("new/", pages.workflow_create, name="workflow_create"),
    path("<int:pk>/", pages.workflow_edit, name="workflow_edit"),
    path("<int:pk>/pins/", pages.workflow_pins, name="workflow_pins"),
    path("<int:pk>/run/", pages.workflow_run, name="workflow_run"),
]
