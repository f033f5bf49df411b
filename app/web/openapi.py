"""What ``/openapi.json`` says each operation answers, so that clients generated from it can
handle every answer: each status an operation can return, with the one error body (OpenAI's on
``/v1``), the real media types (audio, Prometheus text), and the requests the synthesis routes
read themselves. Routes pass these helpers as ``responses=`` and ``openapi_extra=``.

FastAPI would also document a 422 with a body of its own for every operation that has
parameters; ours come in the error shape, and some operations cannot answer 422 at all, so
:func:`install` removes FastAPI's and the operations declare their own.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from common.params import SynthesisParams, field_aliases
from common.voices.library import MAX_ID_CHARS

from ..audio.encoding import FORMATS

Responses = dict[int | str, dict[str, Any]]

METRICS_TYPE = CONTENT_TYPE_LATEST
_BINARY = {"schema": {"type": "string", "format": "binary"}}
# Server-sent events: before OpenAPI 3.2 (FastAPI writes 3.1) the schema describes one event.
SSE = "text/event-stream"
_SSE_EVENT = {
    "schema": {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "description": "speech.audio.delta (base64 audio), then speech.audio.done, or an "
                "error event",
            },
            "event": {"type": "string"},
        },
    }
}


def media_types(*formats: str) -> tuple[str, ...]:
    """The media types (without parameters) of output formats (app.audio.encoding.FORMATS)."""
    return tuple(sorted({FORMATS[name].media_type.split(";")[0] for name in formats}))


AUDIO_TYPES = media_types(*FORMATS)


class ErrorDetail(BaseModel):
    code: str = Field(description="what went wrong, one of the codes in docs/API.md")
    message: str = Field(description="a sentence fit to show a user")
    field: str | None = Field(None, description="the parameter at fault, when one is")


class ErrorBody(BaseModel):
    """Every error outside ``/v1``."""

    error: ErrorDetail


class OpenAIErrorDetail(BaseModel):
    message: str
    type: Literal["invalid_request_error", "server_error"]
    param: str | None
    code: str | None


class OpenAIErrorBody(BaseModel):
    """Every error on ``/v1``: OpenAI's shape."""

    error: OpenAIErrorDetail


_WHEN = {
    400: "A bad request: a voice id that is not one, a body that cannot be parsed (on /v1, "
    "every invalid request)",
    401: "No API key (on /v1: no key, or a wrong one)",
    403: "The API key is not valid, or the voice is read-only",
    404: "No such voice",
    409: "A voice of that id exists (add overwrite=true)",
    413: "The body is over MAX_REQUEST_BYTES (uploads: MAX_VOICE_UPLOAD_BYTES)",
    415: "The uploaded file is empty or not audio",
    422: "A parameter is missing, unknown, malformed or out of range (field names it); on "
    "synthesis, also a voice the model cannot use",
    500: "The worker failed unexpectedly (the server log has the details)",
    503: "No worker ready, every slot busy and the queue full, or shutting down: retry after "
    "Retry-After seconds",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}


def errors(*statuses: int, openai: bool = False) -> Responses:
    """Error responses in the error shape (OpenAI's with ``openai``)."""
    model = OpenAIErrorBody if openai else ErrorBody
    declared: Responses = {}
    for status in statuses:
        declared[status] = {"model": model, "description": _WHEN[status]}
        if status == 503:
            declared[status]["headers"] = _RETRY_AFTER
    return declared


def binary(description: str, *media_types: str, status: int = 200) -> Responses:
    """A response whose body is bytes of one of ``media_types`` (or server-sent events)."""
    content = {kind: _SSE_EVENT if kind == SSE else _BINARY for kind in media_types}
    return {status: {"description": description, "content": content}}


def json_body(model: type[BaseModel], description: str, status: int = 200) -> Responses:
    return {status: {"model": model, "description": description}}


def synthesis(*media_types: str, openai: bool = False, body: bool = False) -> Responses:
    """What a synthesis route answers: audio as it is generated, or a refusal before it starts."""
    refusals = (400, 401, 404, 500, 503) if openai else (401, 403, 404, 422, 500, 503)
    return {
        **binary("The audio, streamed as it is generated", *media_types),
        **errors(*refusals, *((413,) if body else ()), openai=openai),
    }


def generate_request(method: str) -> dict[str, Any]:
    """``openapi_extra`` of /tts/generate: its parameters, which the route parses itself, as a
    query string (GET) or a JSON body (POST)."""
    schema = _generate_schema()
    if method == "POST":
        content = {"application/json": {"schema": schema}}
        return {"requestBody": {"required": True, "content": content}}
    return {
        "parameters": [_query(name, prop, schema) for name, prop in schema["properties"].items()]
    }


def json_request(schema: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` of a route that reads a JSON body of ``schema`` itself (a pydantic
    schema: its ``$defs`` are inlined, since ``#/$defs/...`` would resolve against the
    document's root, where nothing is)."""
    body = _inline(schema, schema.get("$defs", {}))
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": body}}}}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref", "")
    if ref.startswith("#/$defs/"):
        return _inline(defs[ref.removeprefix("#/$defs/")], defs)
    return {key: _inline(value, defs) for key, value in node.items() if key != "$defs"}


def _generate_schema() -> dict[str, Any]:
    params = SynthesisParams.model_json_schema(mode="validation")["properties"]
    aliases = {
        alias: {**params[name], "description": f"the specification's name for {name}"}
        for alias, name in field_aliases().items()
    }
    text = {"type": "string", "minLength": 1, "description": "what to say (MAX_TEXT_CHARS)"}
    properties = {
        "text": {**text, "examples": ["Hello! This is Chatterbox."]},
        "voice_id": _nullable(
            {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS}, ["anna.wav"]
        ),
        "format": _nullable({"enum": list(FORMATS), "default": "wav"}),
        "sample_rate": _nullable({"type": "integer", "minimum": 8000, "maximum": 48000}),
        **params,
        **aliases,
    }
    return {"type": "object", "required": ["text"], "properties": properties,
            "additionalProperties": False}  # fmt: skip


def _nullable(schema: dict[str, Any], examples: list[Any] | None = None) -> dict[str, Any]:
    nullable: dict[str, Any] = {"anyOf": [schema, {"type": "null"}]}
    return {**nullable, "examples": examples} if examples else nullable


def _query(name: str, prop: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter (a query string cannot say null: the non-null choice)."""
    choices = [choice for choice in prop.get("anyOf", [prop]) if choice.get("type") != "null"]
    extra = {k: v for k, v in prop.items() if k in ("default", "description", "examples")}
    return {"name": name, "in": "query", "required": name in schema["required"],
            "schema": {**choices[0], **extra}}  # fmt: skip


def install(app: FastAPI) -> None:
    """Serve the document without FastAPI's own 422s (see the module's docstring)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            _drop_framework_422s(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _drop_framework_422s(document: dict[str, Any]) -> None:
    framework = "#/components/schemas/HTTPValidationError"
    for operations in document["paths"].values():
        for operation in operations.values():
            declared = operation.get("responses", {}).get("422", {})
            schema = declared.get("content", {}).get("application/json", {}).get("schema", {})
            if schema.get("$ref") == framework:
                del operation["responses"]["422"]
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
