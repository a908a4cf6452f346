"""Request bodies in, JSON out: the one body reader and the one way API input is validated.

API input is validated with pydantic models, never DRF serializers. The reason: the shapes we
accept are Prefect's wire models (its `EventFilter`, triggers, actions, automations), which are
pydantic models there and here, so the filter model, the trigger and action definitions and the
request bodies around them share one validator, one error format and one schema generator
(drf-spectacular describes pydantic models through its pydantic extension).

Error bodies carry our keys and Prefect's: `{"detail", "errors": [{"field", "message"}]}` for
people and `exception_message` (every error), `exception_detail` (pydantic-style `loc` / `msg` /
`type` per problem) and `request_body` (422) for Prefect's client and scripts written for it.
The echoed body never repeats a credential (`ECHO_REDACTED_KEYS`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import orjson
from asgiref.sync import sync_to_async
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from pydantic import BaseModel, ValidationError
from rest_framework.views import exception_handler as drf_exception_handler

from events.schema import unstorable
from eventsite.field_secrets import REDACTED

Model = TypeVar("Model", bound=BaseModel)
_UNSET: Any = object()
# Keys whose values are credentials wherever they appear in a request body we echo back.
ECHO_REDACTED_KEYS = frozenset(
    {"headers", "webhook_url", "routing_key", "secret", "token", "password", "verification_secret"}
)


def json_response(data: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(data), status=status, content_type="application/json")


def json_array_response(
    chunk: Callable[[], list], close: Callable[[], None]
) -> StreamingHttpResponse:
    """A JSON array streamed from `chunk()` (called until it returns []), then `close()`.

    Under ASGI a streamed body must be an async iterator (Django reads a sync one whole before
    sending): each chunk is read in the request's thread (`sync_to_async`, thread-sensitive, the
    thread holding the database cursor).
    """

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b"["
            first = True
            while rows := await sync_to_async(chunk)():
                text = orjson.dumps(rows)[1:-1]
                yield text if first else b"," + text
                first = False
            yield b"]"
        finally:
            await sync_to_async(close)()

    return StreamingHttpResponse(body(), content_type="application/json")


def error_response(
    status: int,
    detail: str,
    errors: list[dict] | None = None,
    *,
    request_body: Any = _UNSET,
) -> HttpResponse:
    """`{"detail", "errors"?}` plus Prefect's `exception_message` (and for 422 its details)."""
    body: dict[str, Any] = {"detail": detail, "exception_message": detail}
    if errors is not None:
        body["errors"] = errors
    if status == 422:
        body["exception_detail"] = [_prefect_error(e) for e in errors or []]
        body["request_body"] = None if request_body is _UNSET else echo(request_body)
    return json_response(body, status=status)


def _prefect_error(error: dict) -> dict:
    loc: list[Any] = ["body"]
    for part in str(error.get("field", "")).split("."):
        if part and part != "body":
            loc.append(int(part) if part.isascii() and part.isdigit() else part)
    return {"loc": loc, "msg": error.get("message", ""), "type": "value_error"}


def echo(value: Any) -> Any:
    """A request body as an error may show it: the values of credential keys redacted."""
    if isinstance(value, dict):
        return {
            k: _redacted(v) if str(k).lower() in ECHO_REDACTED_KEYS else echo(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [echo(v) for v in value]
    return value


def _redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return dict.fromkeys(value, REDACTED)
    return REDACTED if value not in (None, "") else value


def exception_handler(exc, context):
    """DRF's handler (401, 403, 404, 405, …) with Prefect's `exception_message` added."""
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" in response.data:
        response.data["exception_message"] = str(response.data["detail"])
    return response


def pydantic_errors(exc: ValidationError, *, prefix: tuple = ()) -> list[dict]:
    """`[{"field": "filter.event.prefix", "message": …}]`, one per problem pydantic found."""
    return [
        {
            "field": ".".join(str(p) for p in (*prefix, *err["loc"])) or "body",
            "message": err["msg"].removeprefix("Value error, "),
        }
        for err in exc.errors(include_url=False)
    ]


def read_json(request: HttpRequest) -> tuple[Any, HttpResponse | None]:
    """The JSON body (None when empty), or the 400/413 response that explains why not."""
    try:
        body = request.body
    except RequestDataTooBig:
        return None, error_response(413, "Request body is larger than this server accepts.")
    if not body.strip():
        return None, None
    try:
        return orjson.loads(body), None
    except orjson.JSONDecodeError as exc:
        return None, error_response(400, f"Malformed JSON: {exc}")


def unstorable_response(data: Any, *, detail: str) -> HttpResponse | None:
    """A 422 naming the fields whose strings no store can hold (NUL, lone surrogates; PostgreSQL
    refuses them even in a query), or None. Event batches say it per event (`events.schema`)."""
    problems = unstorable(data)
    if not problems:
        return None
    errors = [{"field": p.field or "body", "message": p.message} for p in problems]
    return error_response(422, detail, errors, request_body=data)


def parse_body(
    request: HttpRequest, model: type[Model], *, detail: str = "Invalid request."
) -> tuple[Model | None, HttpResponse | None]:
    """Read the JSON body into `model`: (the value, None) or (None, the 400/413/422 response).

    An empty body is validated as `{}`, so a model whose fields all have defaults accepts it; a
    JSON `null` is validated as what it is (and refused).
    """
    data, error = read_json(request)
    if error is not None:
        return None, error
    if data is None and not request.body.strip():
        data = {}
    if error := unstorable_response(data, detail=detail):
        return None, error
    try:
        return model.model_validate(data), None
    except ValidationError as exc:
        return None, error_response(422, detail, pydantic_errors(exc), request_body=data)
