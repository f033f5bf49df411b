"""Schemathesis hooks for tests/service/test_schemathesis.py, which loads them into ``st run``
through ``SCHEMATHESIS_HOOKS``.

Random weights never emit the end-of-speech token, so every text schemathesis gets accepted is
spoken to its token budget (a second of audio per 8 characters, or ``fixed_token_count`` up to
4000 tokens: minutes on a CPU). So every synthesis request's speech is capped at a few tokens per
text chunk: that changes how long the audio is, not which statuses, content types or bodies come
back. Values that are invalid on purpose (a negative case) are left alone.
"""

from __future__ import annotations

from typing import Any

import schemathesis

TOKENS = 5
MOST_TOKENS = 4000  # the parameter's bound (common.params)
SYNTHESIS = ("/tts/generate", "/v1/audio/speech")


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if case.operation.path not in SYNTHESIS:
        return
    for values in (case.query, case.body):
        if isinstance(values, dict):
            cap_tokens(values)


def cap_tokens(values: dict[str, Any]) -> None:
    count = values.get("fixed_token_count")
    valid = isinstance(count, int) and not isinstance(count, bool) and 1 <= count <= MOST_TOKENS
    if count is None or (valid and count > TOKENS):
        values["fixed_token_count"] = TOKENS
