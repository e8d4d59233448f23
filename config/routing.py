"""WebSocket routes; each app with a socket adds its `routing.websocket_urlpatterns` here."""

from apps.executions.routing import websocket_urlpatterns as execution_routes

websocket_urlpatterns: list = [*execution_routes]
