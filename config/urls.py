from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from config import health, metrics

api_v1 = [
    path("", include("apps.users.api.urls")),
    path("", include("apps.agents.api.urls")),
    path("", include("apps.workflows.api.urls")),
    path("", include("apps.executions.api.urls")),
    path("", include("apps.billing.api.urls")),
]

urlpatterns = [
    path("", include("apps.executions.urls")),  # `/`: the dashboard, runs/
    path("", include("apps.agents.urls")),  # agents/, credentials/
    path("workflows/", include("apps.workflows.urls")),
    path("billing/", include("apps.billing.urls")),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", metrics.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("accounts/", include("apps.users.urls")),
    path("accounts/", include("allauth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
]

if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

handler400 = "config.errors.bad_request"
handler403 = "config.errors.permission_denied"
handler404 = "config.errors.page_not_found"
handler500 = "config.errors.server_error"
