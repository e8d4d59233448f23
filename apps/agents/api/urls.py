from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.agents.api import tools, views

router = SimpleRouter()
router.register("agents", views.AgentViewSet, basename="agent")
router.register("credentials", views.CredentialViewSet, basename="credential")
router.register("tools", tools.ToolViewSet, basename="tool")

urlpatterns = [
    path("tools/built-in/", tools.BuiltinToolListView.as_view(), name="tool-builtin-list"),
    *router.urls,
]
