"""Logging for the master and the workers: every line names its process and its request.

The request id lives in a context variable. The master sets it per HTTP request or WebSocket
utterance (asyncio copies it into the tasks a request starts), the worker per job, so the lines
of one request can be found in both processes by the id the client sees in ``X-Request-Id``.
Lines outside any request show ``-``. ``LOG_FORMAT=json`` writes one JSON object per line
(python-json-logger) for log collectors; ``text`` is for people.

No line carries a key: every formatted line (uvicorn's access and error lines, websockets', ours,
tracebacks included) has the values of key-bearing query parameters (``api_key=``,
``xi-api-key=``, ``key=``, ``token=``, ``authorization=`` ...) and ``Bearer`` tokens replaced by
``***``. Browsers can send a key only in the URL, uvicorn logs every URL with its query string,
and logs leave the machine (RunPod's log viewer), so this is done on the one handler every record
reaches, after formatting, rather than logger by logger.
"""

from __future__ import annotations

import itertools
import logging
import re
import sys
import uuid
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
_request_numbers = itertools.count()


def new_request_id() -> str:
    return f"{uuid.uuid4().hex[:16]}{next(_request_numbers):x}"


def current_request_id() -> str:
    """The id of the request being served, or a fresh one outside any request."""
    return request_id_var.get() or new_request_id()


TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process_name)s] [%(request_id)s] %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(process_name)s %(request_id)s %(name)s %(message)s"
JSON_NAMES = {
    "asctime": "time",
    "levelname": "level",
    "process_name": "process",
    "name": "logger",
}


# A key-bearing parameter's value ends at the next separator; a backslash ends it too, so a
# JSON-escaped quote after it survives.
SECRET_PARAMETER = re.compile(
    r"(?i)(?<![\w-])((?:api[_-]?key|xi[_-]api[_-]key|key|token|access[_-]token|authorization)"
    r"=)[^&\s\"'\\#;,]+"
)
BEARER = re.compile(r"(?i)(\bbearer\s+)[^\s\"'\\,;]+")


def redact(line: str) -> str:
    """``line`` with every key value in it replaced by ``***``."""
    return BEARER.sub(r"\1***", SECRET_PARAMETER.sub(r"\1***", line))


class RedactingFormatter(logging.Formatter):
    """Another formatter's lines, with :func:`redact` applied to each (message and traceback)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


# What uvicorn logs with a traceback though the client is at fault (a text frame that is not
# UTF-8: uvicorn closes the socket with 1007): one warning line each instead.
CLIENT_FAULTS = ("Invalid UTF-8 sequence received from client.",)


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
        if record.exc_info and record.msg in CLIENT_FAULTS:
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def configure_logging(level: str, log_format: str, process_name: str) -> None:
    """Send every logger's records (uvicorn's and the libraries' too) to stderr, one format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter(process_name))
    if log_format == "json":
        inner: logging.Formatter = JsonFormatter(JSON_FIELDS, rename_fields=JSON_NAMES)
    else:
        inner = logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(RedactingFormatter(inner))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
