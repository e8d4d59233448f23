"""WSGI entry point: HTTP only. Use config.asgi for WebSockets (the default)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()
