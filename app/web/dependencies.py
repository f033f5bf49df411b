"""What routes receive through ``Depends``: tests override these to swap any of them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, APIKeyQuery
from starlette.requests import HTTPConnection

from common.settings import Settings
from common.voices.library import VoiceLibrary

from ..pool import WorkerPool
from .auth import HEADER, QUERY, check_api_key


def get_settings(request: HTTPConnection) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_pool(request: HTTPConnection) -> WorkerPool:
    pool: WorkerPool = request.app.state.pool
    return pool


def get_library(request: HTTPConnection) -> VoiceLibrary:
    library: VoiceLibrary = request.app.state.library
    return library


SettingsDep = Annotated[Settings, Depends(get_settings)]
LibraryDep = Annotated[VoiceLibrary, Depends(get_library)]
PoolDep = Annotated[WorkerPool, Depends(get_pool)]


# Where a key may come: declared for the OpenAPI document (check_api_key reads the request,
# as it does a WebSocket's).
HeaderKey = Annotated[str | None, Security(APIKeyHeader(name=HEADER, auto_error=False))]
QueryKey = Annotated[str | None, Security(APIKeyQuery(name=QUERY, auto_error=False))]


def require_api_key(
    request: Request, settings: SettingsDep, _header: HeaderKey, _query: QueryKey
) -> None:
    check_api_key(request, settings)


Authorized = Depends(require_api_key)
