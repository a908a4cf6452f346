"""CloudEvents → Prefect events, for the `from_cloud_event(headers)` template filter (reference §6.3).

Both HTTP content modes are parsed by the `cloudevents` SDK: structured
(`Content-Type: application/cloudevents+json`, the body is the whole event) and binary (the
attributes in `ce-*` headers, the body is the data).

The CloudEvents spec makes `source` + `id` unique per event, so they decide the Prefect event's
id (a UUID5 of both): a sender's retry of the same event is stored once (ingest keeps the first
copy of an id). So `id` is required in both modes (the SDK would invent one), and a `time` the
sender did not give is not invented either: the event then occurs when it is received.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from cloudevents.core.exceptions import BaseCloudEventException

from events.schema import RESOURCE_ID, isoformat

# The namespace of the ids derived from a CloudEvent's source and id.
CLOUDEVENT_NAMESPACE = uuid.UUID("6d0b2f56-3f8e-5c0e-9a55-3f1c2b7c5e01")


class NotACloudEvent(ValueError):
    pass


def event_id(source: str, cloud_event_id: str) -> uuid.UUID:
    """The Prefect event id of the CloudEvent with this `source` and `id`."""
    return uuid.uuid5(CLOUDEVENT_NAMESPACE, f"{source}\n{cloud_event_id}")


def _given(body: Any, headers: Mapping[str, str], attribute: str) -> bool:
    """Did the sender give `attribute` (the SDK fills in `id` and `time` when not)?"""
    if f"ce-{attribute}" in headers:
        return True
    if isinstance(body, bytes | str):
        try:
            body = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            return False
    return isinstance(body, dict) and body.get(attribute) not in (None, "")


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
    lowered = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    message = HTTPMessage(headers=lowered, body=_body_bytes(body))
    try:
        cloud_event = from_http_event(message)
    except (BaseCloudEventException, ValueError, TypeError, KeyError) as exc:
        raise NotACloudEvent(f"not a CloudEvent: {exc}") from None
    attributes = {k: _jsonable(v) for k, v in cloud_event.get_attributes().items()}
    structured = not any(name.startswith("ce-") for name in lowered)
    if not _given(body if structured else None, lowered, "id"):
        mode = "structured: an `id` attribute" if structured else "binary: a ce-id header"
        raise NotACloudEvent(f"not a CloudEvent: it needs an id ({mode})")
    if not _given(body if structured else None, lowered, "time"):
        attributes.pop("time", None)
    event: dict[str, Any] = {
        "id": str(event_id(str(attributes.get("source")), str(attributes.get("id")))),
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
