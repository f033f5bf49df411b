"""API keys: ``X-API-Key`` header or ``api_key`` query parameter, several keys allowed.

Keys are compared in constant time (``hmac.compare_digest``) against every configured key, so
the response time says nothing about how much of a key was right. With no ``API_KEY`` the
service runs open only on a loopback ``HOST`` or with ``ALLOW_UNAUTHENTICATED=true``
(:func:`startup_problem` stops it otherwise).
"""

from __future__ import annotations

import hmac

from starlette.requests import HTTPConnection

from common.settings import Settings

from .errors import ApiError

HEADER = "X-API-Key"
QUERY = "api_key"


def key_matches(candidate: str, keys: list[str]) -> bool:
    given = candidate.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode())
    return matched


def check_api_key(connection: HTTPConnection, settings: Settings) -> None:
    """Raise ApiError(401/403) unless the request carries a valid key (or auth is off)."""
    keys = settings.api_keys
    if not keys:
        return
    candidate = connection.headers.get(HEADER) or connection.query_params.get(QUERY)
    if not candidate:
        raise ApiError(
            "unauthorized",
            f"missing API key: send it in the {HEADER} header or the {QUERY} query parameter",
            headers={"WWW-Authenticate": HEADER},
        )
    if not key_matches(candidate, keys):
        raise ApiError("forbidden", "the API key is not valid")


def startup_problem(settings: Settings) -> str | None:
    """Why the service must not start with these settings, or None."""
    if settings.api_keys or settings.host_is_loopback or settings.allow_unauthenticated:
        return None
    return (
        f"API_KEY is not set and HOST={settings.host} is reachable from other machines: set "
        "API_KEY (several keys: comma-separated), or HOST=127.0.0.1 to serve only this machine, "
        "or ALLOW_UNAUTHENTICATED=true to serve everyone without a key on purpose"
    )
