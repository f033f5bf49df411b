"""The web console: ``/`` serves the page, ``/console/*`` its scripts and styles (``app/static``).

The page and its files are public, like ``/health``: they hold no secret. Every call the page
makes to the API carries the key the user typed, which stays in the browser (localStorage).
The page's policy allows only its own origin's scripts, styles and connections, plus ``blob:``
media for Media Source Extensions and downloads.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
PREFIX = "/console"
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "media-src 'self' blob:",
        "img-src 'self' data: blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate, so an upgraded server never runs an old script against a new API.
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def console_page() -> FileResponse:
    """The console itself (its scripts load from ``/console/``, relative to the page)."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)


def install(app: FastAPI) -> None:
    """Serve the page at ``/`` and the files next to it under ``/console``."""
    app.include_router(router)
    app.mount(PREFIX, StaticFiles(directory=STATIC_DIR), name="console")
