"""Absolute URLs of eventsite's own pages and endpoints, for links that leave the request.

Behind a TLS proxy the backend sees `http://127.0.0.1:8001`, not what people type; the one
`EVENTSITE_PUBLIC_URL` says what that is. Every absolute URL the app builds (API `next_page`
links, webhook receive URLs, links in notifications and templates) comes from here.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def public_url(path: str, *, request: HttpRequest | None = None) -> str:
    """`path` (starting with `/`) as an absolute URL.

    `EVENTSITE_PUBLIC_URL` when set; otherwise the request's own scheme and host; otherwise
    (no request: an action run by the engine) the address `serve` listens on by default.
    """
    base = settings.EVENTSITE_PUBLIC_URL
    if base:
        return base.rstrip("/") + path
    if request is not None:
        return request.build_absolute_uri(path)
    return "http://127.0.0.1:8000" + path
