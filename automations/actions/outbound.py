"""Outbound HTTP for actions: only where it should go, and never for long.

An automation's URL is written by a signed-in person but may be rendered from an event, and a
webhook target can redirect anywhere. So every call made by call-webhook and the presets:

- connects only to public addresses: loopback, link-local (cloud metadata at 169.254.169.254),
  private, shared, multicast and reserved ranges are refused unless
  `EVENTSITE_ACTIONS_ALLOW_PRIVATE` allows them. The check runs on the *resolved* address of
  every connection, in the connection itself (`GuardedBackend`), so neither a DNS name that
  points inside, nor a redirect, nor a DNS answer that changes between check and connect gets
  through;
- follows at most `EVENTSITE_ACTIONS_MAX_REDIRECTS` redirects, and sends the configured headers
  (which may hold credentials) only to the origin they were configured for;
- reads at most `EVENTSITE_ACTIONS_MAX_RESPONSE_BYTES` of the answer, and gives up when the
  whole exchange (redirects included) takes longer than its deadline.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx
from django.conf import settings

SENSITIVE_HEADERS = ("authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key")
REDIRECTS = (301, 302, 303, 307, 308)


# What a caller catches: the network failed, or it was too slow to answer at all.
CallFailed = httpx.HTTPError
CallTimedOut = httpx.TimeoutException


class Refused(Exception):
    """The call is not allowed (an address or a redirect); trying again would not help."""


class Slow(Exception):
    """The whole exchange took longer than its deadline."""


def _allowed_networks() -> bool | tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    raw = settings.EVENTSITE_ACTIONS_ALLOW_PRIVATE
    if isinstance(raw, bool):
        return raw
    return _parse_allowed(str(raw))


@lru_cache(maxsize=8)
def _parse_allowed(raw: str):
    raw = raw.strip()
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("", "0", "false", "no", "off"):
        return False
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in raw.split(",") if part
    )


def check_address(address: str) -> None:
    """Raise `Refused` unless `address` (an IP) may be called."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip.is_global and not ip.is_multicast:
        return
    allowed = _allowed_networks()
    if allowed is True or (allowed and any(ip in network for network in allowed)):
        return
    raise Refused(
        f"{ip} is a loopback, link-local or private address; eventsite does not call those "
        "unless EVENTSITE_ACTIONS_ALLOW_PRIVATE allows it"
    )


class GuardedBackend(httpcore.SyncBackend):
    """Resolves the host itself, checks every address, and connects to a checked address."""

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        for address in addresses:
            check_address(address)  # every answer: a mixed answer must not be a way in
        last: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        raise last or httpcore.ConnectError(f"no address for {host!r}")


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport on a connection pool that connects through `GuardedBackend`."""

    def __init__(self) -> None:
        super().__init__(trust_env=False)
        # httpx builds its pool without a way to choose the network backend; replace it.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=50,
            max_keepalive_connections=10,
            keepalive_expiry=30.0,
            network_backend=GuardedBackend(),
        )


_CLIENT: httpx.Client | None = None


def client() -> httpx.Client:
    """One shared, thread-safe client: building one per call costs an SSL context each time."""
    global _CLIENT
    if _CLIENT is None:
        _CLIENT = httpx.Client(
            transport=GuardedTransport(), follow_redirects=False, trust_env=False
        )
    return _CLIENT


@dataclass
class Reply:
    """What came back: the last answer, its body (up to the cap) and the way there."""

    status_code: int
    headers: dict[str, str]
    body: bytes
    truncated: bool
    url: str
    redirects: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def safe_headers(self) -> dict[str, str]:
        return {k: v for k, v in self.headers.items() if k.lower() not in SENSITIVE_HEADERS}


def origin(url: str) -> str:
    """scheme://host[:port] of `url`, without any user:password part."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}" if host else url[:100]


def send(
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    content: bytes | None,
    timeout: float,
) -> Reply:
    """One call, redirects followed within the limits; raises `Refused`, `Slow`, `CallFailed`."""
    deadline = time.monotonic() + timeout
    max_redirects = settings.EVENTSITE_ACTIONS_MAX_REDIRECTS
    cap = settings.EVENTSITE_ACTIONS_MAX_RESPONSE_BYTES
    first_origin = origin(url)
    redirects: list[str] = []
    while True:
        if urlsplit(url).scheme not in ("http", "https"):
            raise Refused(f"redirected to a URL that is not http(s): {origin(url)}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Slow(f"no answer within {timeout:g} s")
        send_headers = headers if origin(url) == first_origin else _portable(headers)
        # Uncompressed, so that the size cap counts what is read (no decompression bombs).
        send_headers = {**send_headers, "accept-encoding": "identity"}
        with client().stream(
            method, url, content=content, headers=send_headers, timeout=remaining
        ) as response:
            location = response.headers.get("location")
            if response.status_code in REDIRECTS and location:
                if len(redirects) >= max_redirects:
                    raise Refused(f"more than {max_redirects} redirects")
                url = urljoin(str(response.url), location)
                redirects.append(origin(url))
                if response.status_code == 303 or (
                    response.status_code in (301, 302) and method == "POST"
                ):
                    method, content = "GET", None
                continue
            body, truncated = _read(response, cap, deadline, timeout)
            return Reply(
                status_code=response.status_code,
                headers=dict(response.headers),
                body=body,
                truncated=truncated,
                url=origin(str(response.url)),
                redirects=redirects,
            )


def _portable(headers: dict[str, str]) -> dict[str, str]:
    """The headers that may follow a redirect to another origin: none of the configured ones."""
    return {k: v for k, v in headers.items() if k.lower() in ("user-agent", "content-type")}


def _read(response: httpx.Response, cap: int, deadline: float, timeout: float):
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_raw():
        if time.monotonic() > deadline:
            raise Slow(f"the answer took longer than {timeout:g} s")
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            return b"".join(chunks)[:cap], True
    return b"".join(chunks), False
