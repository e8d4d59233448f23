"""WebSocket routes; each app with a socket adds its `routing.websocket_urlpatterns` here."""

websocket_urlpatterns: list = []
