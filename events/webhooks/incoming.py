"""One received webhook request, as the request log keeps it and a template sees it.

`Incoming` holds the method, path, query, body (up to the size limit) and the headers with
credentials and proxy/tracing headers removed (`headers`: what the log, templates and events
get). The removed values stay in `credentials`, for the signature check only
(`events.webhooks.verify`), and are never stored.
"""

from __future__ import annotations

import base64
import binascii
import quopri
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl

import orjson
from django.http import HttpRequest
from django.utils.http import parse_header_parameters

from events.webhooks.verify import CREDENTIAL_HEADERS

# Credentials and proxy/tracing headers never reach a template, the log or an event.
REDACTED_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "forwarded",
        "via",
        "x-real-ip",
        "x-csrftoken",
        "x-api-key",
        "x-auth-token",
        "traceparent",
        "tracestate",
    }
)
# Parts of a multipart body read at most; more are refused before parsing.
MAX_FORM_PARTS = 1_000
REDACTED_PREFIXES = ("x-forwarded", "x-b3", "x-cloud-trace", "x-envoy", "x-prefect", "proxy-")


def is_redacted(name: str) -> bool:
    name = name.lower()
    return (
        name in REDACTED_HEADERS or name in CREDENTIAL_HEADERS or name.startswith(REDACTED_PREFIXES)
    )


def multi_dict(pairs: Iterable[tuple[str, str]]) -> dict[str, str | list[str]]:
    """Pairs as a dict: a key given once maps to its value, a repeated key to all its values."""
    out: dict[str, str | list[str]] = {}
    for key, value in pairs:
        if key not in out:
            out[key] = value
        elif isinstance(out[key], list):
            out[key].append(value)
        else:
            out[key] = [out[key], value]
    return out


class Headers(dict):
    """Request headers for templates: lower-case keys, looked up case-insensitively."""

    def __init__(self, items: Iterable[tuple[str, str]] | Mapping[str, str] = ()):
        pairs = items.items() if isinstance(items, Mapping) else items
        super().__init__((str(k).lower(), str(v)) for k, v in pairs)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower() if isinstance(key, str) else key)

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower() if isinstance(key, str) else key, default)


@dataclass
class Incoming:
    """One received request, as the log keeps it and the template sees it."""

    method: str
    path: str
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names, secrets removed
    body: bytes = b""
    truncated: bool = False
    # What was removed from `headers`, for the signature check only; never stored or shown.
    credentials: dict[str, str] = field(default_factory=dict, repr=False)
    # The client's address, for the log of requests to made-up URLs only.
    source: str = ""

    @classmethod
    def build(
        cls,
        *,
        method: str,
        path: str,
        query: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        truncated: bool = False,
        source: str = "",
    ) -> Incoming:
        kept: dict[str, str] = {}
        removed: dict[str, str] = {}
        for name, value in headers:
            name = name.lower()
            into = removed if is_redacted(name) else kept
            into[name] = f"{into[name]}, {value}" if name in into else value
        return cls(
            method=method.upper(),
            path=path,
            query=query,
            headers=kept,
            body=body,
            truncated=truncated,
            credentials=removed,
            source=source,
        )

    def without(self, name: str | None) -> Incoming:
        """This request with one more header moved out of `headers` (a webhook's own
        signature header, say `X-Signature`, is a credential for that webhook only)."""
        name = (name or "").lower()
        if not name or name not in self.headers:
            return self
        headers = dict(self.headers)
        credentials = {**self.credentials, name: headers.pop(name)}
        return replace(self, headers=headers, credentials=credentials)

    def all_headers(self) -> dict[str, str]:
        return {**self.headers, **self.credentials}

    @classmethod
    def from_request(cls, request: HttpRequest, *, limit: int) -> Incoming:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        declared_size = int(declared) if declared.isascii() and declared.isdigit() else 0
        body = request.read(limit + 1) if declared_size <= limit else request.read(limit)
        truncated = declared_size > limit or len(body) > limit
        return cls.build(
            method=request.method or "GET",
            path=request.path,
            query=request.META.get("QUERY_STRING", ""),
            headers=request.headers.items(),
            body=body[:limit],
            truncated=truncated,
            source=request.META.get("REMOTE_ADDR") or "",
        )

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def parsed_body(self) -> Any:
        """JSON → its value; a form → a dict of fields (a repeated field → the list of its
        values); anything else → JSON or the text."""
        if not self.body:
            return ""
        text = self.body.decode("utf-8", errors="replace")
        if self.content_type == "application/x-www-form-urlencoded":
            try:
                return multi_dict(parse_qsl(text, keep_blank_values=True, max_num_fields=10_000))
            except ValueError:
                return text
        if self.content_type == "multipart/form-data":
            return _multipart_fields(self.headers.get("content-type", ""), self.body) or text
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return text

    def query_params(self) -> dict[str, str | list[str]]:
        """`?a=1&b=2&b=3` → `{"a": "1", "b": ["2", "3"]}`: no value is dropped."""
        try:
            return multi_dict(parse_qsl(self.query, keep_blank_values=True, max_num_fields=1_000))
        except ValueError:
            return {}

    def context(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "headers": Headers(self.headers),
            "body": self.parsed_body(),
            "query": self.query_params(),
        }


class BodyRefused(ValueError):
    """The body is refused before it is parsed (too many parts); the message says why."""


def _multipart_fields(content_type: str, body: bytes) -> dict[str, str | list[str]]:
    """The fields of a multipart form; a file field gives its file name, not its content.

    The parts are counted before anything is parsed (`BodyRefused` past `MAX_FORM_PARTS`), and
    each part's headers are read with Django's header parser: the `email` package takes
    quadratic time on many parts (10k parts took minutes)."""
    _, params = parse_header_parameters(content_type)
    boundary = params.get("boundary", "")
    if not boundary:
        return {}
    delimiter = b"--" + boundary.encode("latin-1", errors="replace")
    parts = body.count(delimiter) - 1
    if parts > MAX_FORM_PARTS:
        raise BodyRefused(
            f"The multipart body has {parts} parts; at most {MAX_FORM_PARTS} are accepted."
        )
    fields: list[tuple[str, str]] = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, separator, content = chunk.partition(b"\r\n\r\n")
        if not separator:
            continue
        headers: dict[str, str] = {}
        for line in head.split(b"\r\n"):
            key, colon, value = line.partition(b":")
            if colon:
                headers[key.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        _, disposition = parse_header_parameters(headers.get("content-disposition", ""))
        name = disposition.get("name")
        if not name:
            continue
        if "filename" in disposition:
            fields.append((name, disposition["filename"]))
            continue
        fields.append((name, _part_text(content.removesuffix(b"\r\n"), headers)))
    return multi_dict(fields)


def _part_text(content: bytes, headers: dict[str, str]) -> str:
    encoding = headers.get("content-transfer-encoding", "").lower()
    try:
        if encoding == "base64":
            content = base64.b64decode(content)
        elif encoding == "quoted-printable":
            content = quopri.decodestring(content)
    except (binascii.Error, ValueError):
        pass
    _, params = parse_header_parameters(headers.get("content-type", "text/plain"))
    try:
        return content.decode(params.get("charset") or "utf-8", errors="replace")
    except LookupError:
        return content.decode("utf-8", errors="replace")
