"""JSON request bodies and WebSocket messages, parsed within bounds: every failure is the
client's, answered with a 4xx that names the body, never a 500.

Python's parser recurses once per level of nesting, so a body nested a few thousand levels deep
ends in RecursionError, and an integer of more than 4300 digits in ValueError. The size of a
body is bounded before parsing (app/body_limit.py, uvicorn's ``ws_max_size`` for WebSocket
messages), its depth while parsing and right after, at far fewer levels than the parser's limit
(our bodies are flat objects), so nothing downstream (pydantic, error messages) walks a deep
structure either.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from .body_limit import BodyTooLarge
from .errors import ApiError

MAX_JSON_DEPTH = 16


class InvalidJson(ValueError):
    """Not a JSON object within bounds; ``str()`` says what is wrong, for the client."""


def parse_json_object(data: bytes | str, what: str = "the body") -> dict[str, Any]:
    """The JSON object in ``data``; InvalidJson if it is not one, or nests too deeply."""
    too_deep = InvalidJson(f"{what} nests more than {MAX_JSON_DEPTH} levels deep")
    try:
        value = json.loads(data)
    except RecursionError:
        raise too_deep from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise InvalidJson(f"{what} must be a JSON object ({_reason(error)})") from None
    if not isinstance(value, dict):
        raise InvalidJson(f"{what} must be a JSON object, not {type(value).__name__}")
    if _deeper_than(value, MAX_JSON_DEPTH):
        raise too_deep
    return value


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request's JSON object body; ApiError (413, 422 naming the body) if there is none."""
    try:
        return parse_json_object(await request.body())
    except BodyTooLarge as error:
        raise ApiError("too_large", error.detail, "body") from None
    except InvalidJson as error:
        raise ApiError("invalid_request", str(error), "body") from None


def _deeper_than(value: object, limit: int) -> bool:
    """Whether ``value`` nests objects or arrays more than ``limit`` deep (without recursion)."""
    level: list[object] = [value]
    for _ in range(limit):
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return False
    return any(isinstance(item, dict | list) for item in level)


def _reason(error: ValueError) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno}, column {error.colno}"
    if isinstance(error, UnicodeDecodeError):
        return "it is not UTF-8"
    return str(error).split(":")[0]
