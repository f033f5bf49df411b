"""Pydantic's validation errors in words a client or an operator can act on.

Every place that validates (request bodies and query strings, WebSocket messages, the worker's
copy of the parameters, the settings) reports the field at fault the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Where FastAPI found a value, which is not part of the field's name.
_LOCATIONS = ("body", "query", "path", "header")

Problems = Sequence[Mapping[str, Any]]  # what ``ValidationError.errors()`` returns


def field_of(problem: Mapping[str, Any]) -> str | None:
    """The dotted name of the field a problem is about (None: the whole input)."""
    parts = [str(part) for part in problem.get("loc", ()) if part not in _LOCATIONS]
    return ".".join(parts) or None


def first_problem(problems: Problems) -> tuple[str | None, str]:
    """(field, "field: what is wrong") of the first problem found."""
    if not problems:
        return None, "invalid input"
    field = field_of(problems[0])
    message = str(problems[0].get("msg", "invalid"))
    return field, f"{field}: {message}" if field else message


def every_problem(problems: Problems, upper: bool = False) -> list[str]:
    """ "NAME: problem" for each problem (names in upper case for environment variables)."""
    described = []
    for problem in problems:
        name = field_of(problem) or "input"
        if upper:
            name = name.replace(".", "_").upper()
        described.append(f"{name}: {problem.get('msg', 'invalid')}")
    return described


def printable(text: str) -> str:
    """``text`` with unpaired surrogates (from JSON's ``\\ud800`` escapes) written as escapes, so
    a message that quotes a client's input can always be encoded as UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
