from django.urls import path

from apps.executions.api import views

app_name = "executions-api"

urlpatterns = [
    path("executions/<str:execution_id>/events/", views.execution_events, name="execution-events"),
]
