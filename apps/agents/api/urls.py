from rest_framework.routers import SimpleRouter

from apps.agents.api import views

router = SimpleRouter()
router.register("agents", views.AgentViewSet, basename="agent")
router.register("credentials", views.CredentialViewSet, basename="credential")

urlpatterns = [*router.urls]
