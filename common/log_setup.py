"""Logging for the master and the workers: every line names its process and its request.

The request id lives in a context variable. The master sets it per HTTP request or WebSocket
utterance (asyncio copies it into the tasks a request starts), the worker per job, so the lines
of one request can be found in both processes by the id the client sees in ``X-Request-Id``.
Lines outside any request show ``-``. ``LOG_FORMAT=json`` writes one JSON object per line
(python-json-logger) for log collectors; ``text`` is for people.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process_name)s] [%(request_id)s] %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(process_name)s %(request_id)s %(name)s %(message)s"
JSON_NAMES = {
    "asctime": "time",
    "levelname": "level",
    "process_name": "process",
    "name": "logger",
}


class ContextFilter(logging.Filter):
    """Stamps each record with the process name and the current request id."""

    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def filter(self, record: logging.LogRecord) -> bool:
        record.process_name = self.process_name
        record.request_id = request_id_var.get() or "-"
        # uvicorn adds an ANSI-coloured copy of its message, which JSON lines would carry too.
        record.__dict__.pop("color_message", None)
        return True


def configure_logging(level: str, log_format: str, process_name: str) -> None:
    """Send every logger's records (uvicorn's and the libraries' too) to stderr, one format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter(process_name))
    if log_format == "json":
        handler.setFormatter(JsonFormatter(JSON_FIELDS, rename_fields=JSON_NAMES))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
