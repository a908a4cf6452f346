from django.urls import path

from events.api import sockets
from events.consumers import FeedConsumer

# Sockets for API clients (Prefect client, SDK): authenticated by token inside the consumer.
# They send no Origin header, so they are not behind the origin check.
api_websocket_urlpatterns: list = [
    path("api/events/in", sockets.EventsInConsumer.as_asgi()),
    path("api/events/out", sockets.EventsOutConsumer.as_asgi()),
]

# Sockets for the pages, mounted under /ws/: session-authenticated, Origin must be an allowed host.
browser_websocket_urlpatterns: list = [
    path("feed/", FeedConsumer.as_asgi()),
]
