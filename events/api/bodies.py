"""Request bodies in, JSON out: the one body reader and the one way API input is validated.

API input is validated with pydantic models, never DRF serializers. The reason: the shapes we
accept are Prefect's wire models (its `EventFilter`, triggers, actions, automations), which are
pydantic models there and here, so the filter model, the trigger and action definitions and the
request bodies around them share one validator, one error format and one schema generator
(drf-spectacular describes pydantic models through its pydantic extension).
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


def json_response(data: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(data), status=status, content_type="application/json")


def error_response(status: int, detail: str, errors: list[dict] | None = None) -> HttpResponse:
    body: dict[str, Any] = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    return json_response(body, status=status)


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


def parse_body(
    request: HttpRequest, model: type[Model], *, detail: str = "Invalid request."
) -> tuple[Model | None, HttpResponse | None]:
    """Read the JSON body into `model`: (the value, None) or (None, the 400/413/422 response).

    An empty body is validated as `{}`, so a model whose fields all have defaults accepts it.
    """
    data, error = read_json(request)
    if error is not None:
        return None, error
    try:
        return model.model_validate(data if data is not None else {}), None
    except ValidationError as exc:
        return None, error_response(422, detail, pydantic_errors(exc))
