"""The OpenAPI document, read without a server: what clients generated from it will expect.
(tests/service/test_schemathesis.py checks the running service against it.)"""

from __future__ import annotations

from typing import Any

import pytest

from app.audio.encoding import FORMATS
from app.main import create_app
from app.pool import WorkerPool
from common.settings import Settings


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    settings = Settings(_env_file=None, api_key="k")  # type: ignore[call-arg]
    pool = WorkerPool(settings, slots=[])
    try:
        return create_app(settings, pool).openapi()
    finally:
        pool.transport.close()  # never started: its ZeroMQ context would hang the GC that finds it


def responses(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    operation: dict[str, Any] = document["paths"][path][method]
    return operation["responses"]


def error_schema(response: dict[str, Any]) -> str:
    return str(response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1])


def test_every_keyed_operation_declares_the_key_errors_in_the_error_shape(
    document: dict[str, Any],
) -> None:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if not operation.get("security"):
                continue
            declared = operation["responses"]
            expected = "OpenAIErrorBody" if path.startswith("/v1") else "ErrorBody"
            assert error_schema(declared["401"]) == expected, (method, path)
            for status, response in declared.items():
                if status >= "400":
                    assert error_schema(response) == expected, (method, path, status)
    assert "HTTPValidationError" not in document["components"]["schemas"]


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("get", "/tts/generate", {"200", "401", "403", "404", "422", "500", "503"}),
        ("post", "/tts/generate", {"200", "401", "403", "404", "413", "422", "500", "503"}),
        ("post", "/voices", {"201", "400", "401", "403", "409", "413", "415", "422"}),
        ("get", "/voices/{voice_id}", {"200", "400", "401", "403", "404"}),
        ("delete", "/voices/{voice_id}", {"200", "400", "401", "403", "404"}),
        ("get", "/voices/{voice_id}/audio", {"200", "400", "401", "403", "404"}),
        ("post", "/v1/audio/speech", {"200", "400", "401", "404", "413", "500", "503"}),
        ("get", "/ping", {"200", "204", "503"}),
        ("get", "/ready", {"200", "503"}),
        ("get", "/metrics", {"200", "401", "403"}),
    ],
)
def test_each_operation_declares_what_it_answers(
    document: dict[str, Any], method: str, path: str, statuses: set[str]
) -> None:
    assert set(responses(document, method, path)) == statuses


def test_media_types_are_the_real_ones(document: dict[str, Any]) -> None:
    audio = {spec.media_type.split(";")[0] for spec in FORMATS.values()}
    for method in ("get", "post"):
        assert set(responses(document, method, "/tts/generate")["200"]["content"]) == audio
    openai = set(responses(document, "post", "/v1/audio/speech")["200"]["content"])
    assert {"audio/mpeg", "audio/ogg", "audio/pcm", "text/event-stream"} <= openai
    metrics = responses(document, "get", "/metrics")["200"]["content"]
    assert [kind.split(";")[0] for kind in metrics] == ["text/plain"]
    clip = responses(document, "get", "/voices/{voice_id}/audio")["200"]["content"]
    assert "audio/wav" in clip and "application/json" not in clip


def test_the_requests_read_by_hand_are_described(document: dict[str, Any]) -> None:
    query = {p["name"] for p in document["paths"]["/tts/generate"]["get"]["parameters"]}
    assert {"text", "voice_id", "format", "sample_rate", "cfg_guidance_weight", "seed"} <= query
    body = document["paths"]["/tts/generate"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["required"] == ["text"]
    speech = document["paths"]["/v1/audio/speech"]["post"]["requestBody"]["content"]
    assert "input" in speech["application/json"]["schema"]["properties"]


def test_every_reference_resolves_in_the_document(document: dict[str, Any]) -> None:
    """A pydantic schema's ``#/$defs/...`` would point at the document's root, where nothing is:
    schema-driven clients and fuzzers cannot read such a body (OpenAI's ``voice`` as ``{id}``)."""

    def refs(node: Any) -> list[str]:
        if isinstance(node, list):
            return [ref for item in node for ref in refs(item)]
        if isinstance(node, dict):
            own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return own + [ref for value in node.values() for ref in refs(value)]
        return []

    for ref in refs(document):
        target: Any = document
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(target, dict) and part in target, f"{ref} resolves to nothing"
            target = target[part]
