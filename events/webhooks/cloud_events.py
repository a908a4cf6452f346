"""CloudEvents → Prefect events, for the `from_cloud_event(headers)` template filter (reference §6.3).

Both HTTP content modes are parsed by the `cloudevents` SDK: structured
(`Content-Type: application/cloudevents+json`, the body is the whole event) and binary (the
attributes in `ce-*` headers, the body is the data).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from cloudevents.core.exceptions import BaseCloudEventException

from events.schema import RESOURCE_ID, isoformat


class NotACloudEvent(ValueError):
    pass


def _body_bytes(body: Any) -> bytes:
    # The template sees the parsed body; the SDK wants the bytes, so serialise it back.
    if body is None or body == "":
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return orjson.dumps(body)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return isoformat(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def parse_cloud_event(body: Any, headers: Mapping[str, str] | None) -> dict[str, Any]:
    """The Prefect event (a dict, not yet validated) for a CloudEvent in `body` + `headers`."""
    message = HTTPMessage(
        headers={str(k).lower(): str(v) for k, v in (headers or {}).items()},
        body=_body_bytes(body),
    )
    try:
        cloud_event = from_http_event(message)
    except (BaseCloudEventException, ValueError, TypeError, KeyError) as exc:
        raise NotACloudEvent(f"not a CloudEvent: {exc}") from None
    attributes = {k: _jsonable(v) for k, v in cloud_event.get_attributes().items()}
    event: dict[str, Any] = {
        "event": attributes.get("type"),
        "resource": {RESOURCE_ID: attributes.get("subject") or attributes.get("source")},
        "payload": {
            "data": _jsonable(cloud_event.get_data()),
            "cloudevents": attributes,
        },
    }
    if attributes.get("time"):
        event["occurred"] = attributes["time"]
    return event


def event_from_cloud_event(body: Any, headers: Mapping[str, str] | None) -> str:
    """`parse_cloud_event` as JSON text, which is what a template filter must output."""
    return orjson.dumps(parse_cloud_event(body, headers)).decode()
