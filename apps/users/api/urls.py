from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.users.api import views

router = SimpleRouter()
router.register("api-keys", views.ApiKeyViewSet, basename="api-key")
router.register("notices", views.NoticeViewSet, basename="notice")

urlpatterns = [path("me/", views.MeView.as_view(), name="me"), *router.urls]
