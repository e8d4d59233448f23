from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.executions.api import views

app_name = "executions-api"

router = SimpleRouter()
router.register("executions", views.ExecutionViewSet, basename="execution")

run_workflow = views.WorkflowRunViewSet.as_view({"post": "run"}, basename="workflow", detail=True)

urlpatterns = [
    # Ahead of the router, which must never answer for it: the stream is a plain async view.
    path("executions/<str:execution_id>/events/", views.execution_events, name="execution-events"),
    # Here, not in the workflows app: runs depend on workflows, never the other way round.
    path("workflows/<str:pk>/run/", run_workflow, name="workflow-run"),
    *router.urls,
]
