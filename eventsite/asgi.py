import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eventsite.settings")
# Build the Django app (and so the app registry) before importing anything that touches models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from events.routing import api_websocket_urlpatterns, browser_websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(
            [
                *api_websocket_urlpatterns,
                # The session cookie authenticates these, so the Origin check stands in for CSRF.
                path(
                    "ws/",
                    AllowedHostsOriginValidator(
                        AuthMiddlewareStack(URLRouter(browser_websocket_urlpatterns))
                    ),
                ),
            ]
        ),
    }
)
