"""Both ways into `/hooks/<slug>`: the Django view (test client) and the ASGI fast path (a real
`manage.py serve`). Receiver tests take the `way` fixture (conftest) and run once through each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Answer:
    status: int
    body: Any


class Way:
    name = ""

    def send(self, path: str, *, method="POST", headers=None, content: bytes = b"") -> Answer:
        raise NotImplementedError


class ViewWay(Way):
    name = "view"

    def __init__(self, client):
        self.client = client

    def send(self, path, *, method="POST", headers=None, content=b""):
        headers = dict(headers or {})
        content_type = headers.pop("Content-Type", headers.pop("content-type", "application/json"))
        response = self.client.generic(
            method, path, content, content_type=content_type, headers=headers
        )
        body = response.json() if response.content else None
        return Answer(response.status_code, body)


class FastWay(Way):
    name = "fast"

    def __init__(self, server):
        self.server = server

    def send(self, path, *, method="POST", headers=None, content=b""):
        headers = {"content-type": "application/json", **(headers or {})}
        response = httpx.request(
            method, self.server.url + path, headers=headers, content=content, timeout=10
        )
        body = response.json() if response.content else None
        return Answer(response.status_code, body)
