from django.urls import path

from apps.executions.consumers import ExecutionConsumer, MultiplexConsumer

websocket_urlpatterns = [
    path("ws/executions/<str:execution_id>/", ExecutionConsumer.as_asgi()),
    path("ws/", MultiplexConsumer.as_asgi()),
]
