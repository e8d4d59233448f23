"""
ASGI entry point, served by daphne (or uvicorn workers): HTTP goes to Django,
WebSockets pass the origin check and authentication
(session cookie or API key, apps.users.sockets), then the routes.
"""

import asyncio
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from apps.executions.broadcast import register_server_loop  # noqa: E402
from apps.users.sockets import SocketStack  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402

router = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SocketStack(URLRouter(websocket_urlpatterns)),
    }
)


async def application(scope, receive, send):
    # The embedded default's in-memory channel layer delivers only on the loop its consumers
    # wait on; worker threads publish through this loop (apps.executions.broadcast).
    register_server_loop(asyncio.get_running_loop())
    return await router(scope, receive, send)
