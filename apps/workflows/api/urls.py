from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.workflows.api import views

router = SimpleRouter()
router.register("workflows", views.WorkflowViewSet, basename="workflow")

versions = views.WorkflowVersionViewSet
urlpatterns = [
    *router.urls,
    path(
        "workflows/<int:workflow_id>/versions/",
        versions.as_view({"get": "list"}, basename="workflow-version"),
        name="workflow-version-list",
    ),
    path(
        "workflows/<int:workflow_id>/versions/<int:number>/",
        versions.as_view({"get": "retrieve"}, basename="workflow-version", detail=True),
        name="workflow-version-detail",
    ),
    path("node-types/", views.NodeTypeListView.as_view(), name="node-type-list"),
]
