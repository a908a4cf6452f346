import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eventsite.settings")
# Build the Django app (and so the app registry) before importing anything that touches models.
django.setup(set_prefix=False)

from eventsite.request_threads import OneHopASGIHandler  # noqa: E402

django_asgi_app = OneHopASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import re_path  # noqa: E402

from events.broadcast import remember_loop_middleware  # noqa: E402
from events.routing import api_websocket_urlpatterns, browser_websocket_urlpatterns  # noqa: E402
from events.webhooks import asgi as webhooks  # noqa: E402


async def http_app(scope, receive, send):
    """Django for everything but `/hooks/<slug>`, which `events.webhooks.asgi.asgi_app` answers
    directly: even in one hop to a pooled thread (`request_threads`), Django's handler is too slow
    for webhook traffic."""
    if webhooks.wants(scope):
        await webhooks.asgi_app(scope, receive, send)
    else:
        await django_asgi_app(scope, receive, send)


application = remember_loop_middleware(
    ProtocolTypeRouter(
        {
            "http": http_app,
            "websocket": URLRouter(
                [
                    *api_websocket_urlpatterns,
                    # The session cookie authenticates these, so the Origin check stands in for CSRF.
                    # A prefix regex, not path("ws/"): URLRouter only treats a route as a prefix when
                    # its callback is itself a URLRouter, and here the middleware wraps it.
                    re_path(
                        r"^ws/",
                        AllowedHostsOriginValidator(
                            AuthMiddlewareStack(URLRouter(browser_websocket_urlpatterns))
                        ),
                    ),
                ]
            ),
        }
    )
)
