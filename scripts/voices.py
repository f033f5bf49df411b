"""Manage the voice library of a running server over ``/voices``.

    python scripts/voices.py add anna.wav                      # voice id: the file name
    python scripts/voices.py add take3.wav --voice-id anna.wav --overwrite
    python scripts/voices.py list [--details]
    python scripts/voices.py show anna.wav                     # or just: anna
    python scripts/voices.py download anna.wav original.wav   # OUT may be a directory, or -
    python scripts/voices.py delete anna.wav
    python scripts/voices.py --url https://tts.example.com --api-key KEY list

The server is ``--url`` (default http://127.0.0.1:8000); the API key is ``--api-key`` or the
``API_KEY`` environment variable, sent as ``X-API-Key``. Each command prints the server's JSON
answer (``download`` prints what it wrote). Exit status: 0 on success; 1 when the server refuses
(its error message goes to stderr, with the HTTP status and error code) or cannot be reached; 2
for bad arguments. Prepare a clip first with ``scripts/prepare_voice.py`` for the best clone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx


class CommandError(Exception):
    """A failure to report on stderr (exit status 1)."""


def runpod_key_for(url: str) -> str | None:
    """$RUNPOD_API_KEY, but only for RunPod's own hosts: an account key must not leak elsewhere."""
    host = urlsplit(url).hostname or ""
    return os.environ.get("RUNPOD_API_KEY") if host.endswith(".runpod.ai") else None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server's base URL")
    parser.add_argument(
        "--api-key", default=os.environ.get("API_KEY"), help="API key (default: $API_KEY)"
    )
    parser.add_argument(
        "--runpod-key",
        help="RunPod API key, sent as Authorization: Bearer, for a RunPod load-balancing "
        "endpoint (default: $RUNPOD_API_KEY, sent only to *.runpod.ai URLs)",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add = commands.add_parser("add", help="upload a reference clip as a voice")
    add.add_argument("file", type=Path, help="the clip (wav, mp3, flac, ogg, m4a, webm, ...)")
    add.add_argument("--voice-id", help="the voice's id (default: the file's name)")
    add.add_argument("--overwrite", action="store_true", help="replace a voice of that id")

    listing = commands.add_parser("list", help="list the voice ids")
    listing.add_argument("--details", action="store_true", help="with size, duration, ...")

    show = commands.add_parser("show", help="one voice's details")
    show.add_argument("voice_id")

    download = commands.add_parser("download", help="save a voice's original clip")
    download.add_argument("voice_id")
    download.add_argument("out", help="a file, an existing directory, or - for stdout")

    delete = commands.add_parser("delete", help="delete an uploaded voice")
    delete.add_argument("voice_id")
    return parser.parse_args()


def voice_path(voice_id: str, suffix: str = "") -> str:
    return f"/voices/{quote(voice_id, safe='')}{suffix}"


def checked(response: httpx.Response) -> httpx.Response:
    """``response`` if it succeeded; else CommandError with the server's error message."""
    if response.is_success:
        return response
    try:
        error = response.json()["error"]
        detail = f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        detail = response.text.strip() or response.reason_phrase
    raise CommandError(f"{response.status_code} {detail}")


def run(args: argparse.Namespace, client: httpx.Client) -> Any:
    """Carry out the command; the JSON to print."""
    if args.command == "add":
        try:
            data = args.file.read_bytes()
        except OSError as error:
            raise CommandError(f"cannot read {args.file}: {error.strerror}") from None
        form = {"voice_id": args.voice_id} if args.voice_id else {}
        params = {"overwrite": "true"} if args.overwrite else {}
        files = {"file": (args.file.name, data)}
        return checked(client.post("/voices", files=files, data=form, params=params)).json()
    if args.command == "list":
        params = {"details": "true"} if args.details else {}
        return checked(client.get("/voices", params=params)).json()
    if args.command == "show":
        return checked(client.get(voice_path(args.voice_id))).json()
    if args.command == "delete":
        return checked(client.delete(voice_path(args.voice_id))).json()
    return download(args, client)


def download(args: argparse.Namespace, client: httpx.Client) -> dict[str, Any]:
    with client.stream("GET", voice_path(args.voice_id, "/audio")) as response:
        if not response.is_success:
            response.read()
            checked(response)
        found = voice_id_of(response) or args.voice_id
        if args.out == "-":
            size = 0
            for chunk in response.iter_bytes():
                sys.stdout.buffer.write(chunk)
                size += len(chunk)
            sys.stdout.buffer.flush()
            return {"voice_id": found, "path": "-", "bytes": size}
        out = Path(args.out)
        if out.is_dir():
            out = out / found
        partial = out.with_name(f".{out.name}.part")
        try:
            with open(partial, "wb") as handle:
                for chunk in response.iter_bytes():
                    handle.write(chunk)
            partial.replace(out)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise CommandError(f"cannot write {out}: {error.strerror}") from None
        content_type = response.headers.get("content-type", "")
        return {"voice_id": found, "path": str(out), "bytes": out.stat().st_size,
                "content_type": content_type}  # fmt: skip


def voice_id_of(response: httpx.Response) -> str | None:
    """The file name in Content-Disposition (the full voice id), if the server sent one."""
    disposition = response.headers.get("content-disposition", "")
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename*" and value.lower().startswith("utf-8''"):
            return Path(unquote(value[7:])).name or None
        if key.lower() == "filename" and value:
            return Path(value.strip('"')).name or None
    return None


def main() -> int:
    args = parse_args()
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    if runpod_key := args.runpod_key or runpod_key_for(args.url):
        headers["Authorization"] = f"Bearer {runpod_key}"
    try:
        with httpx.Client(base_url=args.url, headers=headers, timeout=args.timeout) as client:
            result = run(args, client)
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except httpx.HTTPError as error:
        print(f"error: cannot reach {args.url}: {error}", file=sys.stderr)
        return 1
    stream = sys.stderr if args.command == "download" and args.out == "-" else sys.stdout
    print(json.dumps(result, indent=2, ensure_ascii=False), file=stream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
