"""How the API's pydantic models appear in the OpenAPI schema (drf-spectacular).

drf-spectacular's own pydantic extension names a component after the model's class name and
silences the collision warning, so two different models both called `FilterRequest` (events and
automations) silently shared one schema. Here a class name that more than one model of the
project uses gets its app's name in front (`EventsFilterRequest`, `AutomationsFilterRequest`),
the same whatever order the views are described in. Request bodies are described as pydantic
validates them, responses as it serialises them.
"""

from __future__ import annotations

from collections import Counter

from drf_spectacular.contrib.pydantic import PydanticExtension
from drf_spectacular.drainage import set_override
from drf_spectacular.plumbing import ResolvedComponent
from pydantic import BaseModel
from pydantic.json_schema import model_json_schema

PROJECT_PACKAGES = ("events", "automations", "eventsite")
REF_TEMPLATE = "#/components/schemas/{model}"


def _project_models() -> list[type[BaseModel]]:
    found, todo = [], list(BaseModel.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.split(".")[0] in PROJECT_PACKAGES:
            found.append(cls)
    return found


def component_name(model: type[BaseModel]) -> str:
    """The model's class name, prefixed with its app's when another project model shares it."""
    names = Counter(cls.__name__ for cls in set(_project_models()))
    if names[model.__name__] <= 1:
        return model.__name__
    return model.__module__.split(".")[0].capitalize() + model.__name__.lstrip("_")


class ProjectPydanticExtension(PydanticExtension):
    priority = 1  # over drf-spectacular's own PydanticExtension

    def get_name(self, auto_schema, direction):
        set_override(self.target, "suppress_collision_warning", True)
        return component_name(self.target)

    def map_serializer(self, auto_schema, direction):
        mode = "validation" if direction == "request" else "serialization"
        schema = model_json_schema(self.target, ref_template=REF_TEMPLATE, mode=mode)
        for name, sub_schema in schema.pop("$defs", {}).items():
            auto_schema.registry.register_on_missing(
                ResolvedComponent(
                    name=name, type=ResolvedComponent.SCHEMA, object=name, schema=sub_schema
                )
            )
        return schema


# Answers every operation can give besides its own, by what the operation takes: a token (401
# without a valid one, 403 when its role or scope does not allow the operation), a path
# parameter (404 for one the URL does not take, e.g. not a UUID) and a JSON body (400 when it is
# not JSON, 413 when it is over the limit, 422 when it is not valid). Each is an `ErrorBody`, as
# `events.api.bodies` writes them (and `eventsite.urls.handler404` under /api/).
_COMMON_ANSWERS = {
    "security": {
        "401": "No valid API token (`Authorization: Bearer <token>`)",
        "403": "The token's role or scope does not allow this",
    },
    "parameters": {"404": "Not found"},
    "requestBody": {
        "400": "The body is not JSON",
        "413": "The body is larger than this server accepts",
        "422": "Invalid body: `{detail, errors: [{field, message}]}`",
    },
}


def document_common_answers(result, generator, request, public):
    """drf-spectacular postprocessing hook: add the common answers to the operations."""
    error_body = {"$ref": REF_TEMPLATE.format(model="ErrorBody")}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for key, answers in _COMMON_ANSWERS.items():
                if not operation.get(key) or operation[key] == [{}]:  # ([{}]: no token needed)
                    continue
                if key == "parameters" and not any(
                    p.get("in") == "path" for p in operation["parameters"]
                ):
                    continue
                for code, description in answers.items():
                    operation["responses"].setdefault(
                        code,
                        {
                            "content": {"application/json": {"schema": error_body}},
                            "description": description,
                        },
                    )
    return result
