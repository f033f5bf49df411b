"""A multipart form read into memory, never spooled to disk.

Starlette's form parser writes any file part over 1 MB to a temporary file; a recording sent
to be converted is used once and must not touch the disk. The body is already bounded by
:mod:`.body_limit` (``MAX_VOICE_UPLOAD_BYTES`` plus the form's room), so holding it is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException
from starlette.requests import Request

from .errors import ApiError

MAX_FIELD_BYTES = 64 * 1024  # a text field (the file parts are bounded by the body's limit)


@dataclass
class MemoryForm:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # by field name
    filenames: dict[str, str] = field(default_factory=dict)


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


async def read_memory_form(request: Request) -> MemoryForm:
    """The request's ``multipart/form-data`` body; ApiError (400/415) if it is not one."""
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise ApiError(
            "unsupported_media_type", "send the request as multipart/form-data with a boundary"
        )
    form, part = MemoryForm(), _Part()
    header: list[bytes] = [b"", b""]

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part.data += data[start:end]
        if part.filename is None and len(part.data) > MAX_FIELD_BYTES:
            raise ApiError("invalid_body", f"form field {part.name!r} is too long", part.name)

    def on_header_end() -> None:
        if header[0].lower() == b"content-disposition":
            _, disposition = parse_options_header(header[1])
            part.name = disposition.get(b"name", b"").decode("utf-8", "replace")
            filename = disposition.get(b"filename")
            part.filename = None if filename is None else filename.decode("utf-8", "replace")
        header[:] = [b"", b""]

    def on_part_end() -> None:
        if part.filename is not None:
            form.files[part.name] = bytes(part.data)
            form.filenames[part.name] = part.filename
        else:
            form.fields[part.name] = part.data.decode("utf-8", "replace")
        part.__init__()  # type: ignore[misc]

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header[0] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header[1] += data[start:end]

    callbacks = {
        "on_part_data": on_part_data,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_end": on_part_end,
    }
    parser = MultipartParser(options[b"boundary"], callbacks)  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except (ApiError, HTTPException):  # HTTPException: the body over its limit (413)
        raise
    except Exception as error:  # python_multipart's parse errors
        raise ApiError("invalid_body", f"the form cannot be parsed: {error}") from None
    return form
