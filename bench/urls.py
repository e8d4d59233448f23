"""B4's server: the project's URLs, plus the plain views the REST API is compared with."""

from django.urls import path

from bench import plain_views
from config.urls import handler400, handler403, handler404, handler500
from config.urls import urlpatterns as project_urlpatterns

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]

urlpatterns = [
    path("plain/executions/", plain_views.execution_list, name="bench-plain-executions"),
    path("plain/executions/<uuid:execution_id>/", plain_views.execution_detail, name="bench-plain-execution"),
    *project_urlpatterns,
]
