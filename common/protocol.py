"""The IPC messages between the master and its workers: the one module both sides import.

Every message is a ZeroMQ multipart message: a JSON frame (a pydantic model below, told apart by
its ``type``) and, for audio only, a second frame with the raw PCM bytes.

Channels (sockets are created in ``app.pool`` and ``worker.service``):

- jobs, master -> one worker (PUSH/PULL, one pair per worker, so the master decides which worker
  gets a job): :class:`Job`, :class:`Cancel`, :class:`Credit` (sent before any text waiting),
  :class:`TextPiece`. At most :data:`JOB_QUEUE_MESSAGES` wait in each end of the pair: the
  master's outbox (``app.pool.outbox``) waits rather than drop, and chooses what goes next.
- results, workers -> master (PUSH/PULL, one PULL in the master): :class:`Heartbeat`,
  :class:`Started`, :class:`Audio`, :class:`Timings`, :class:`Done`, :class:`Failed`.
- control, master -> all workers (PUB/SUB): :class:`InvalidateVoice`, :class:`Drain`.

Only these plain types cross the process boundary: a worker's exception becomes a
:class:`Failed` with a code and a message fit for a client, never a pickled traceback.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .params import SynthesisParams
from .timings import ChunkTimings

# Messages each end of a job socket pair may hold (ZeroMQ's high-water mark, set on both): what
# is in the pipe is read in order, so this bounds what a Job or Cancel can find ahead of it.
JOB_QUEUE_MESSAGES = 64
SOURCE_RATE = 16000  # a voice conversion's source, as S3Gen's tokenizer reads it

# What a worker says of itself in its heartbeat ...
ReportedState = Literal["starting", "loading", "ready", "draining", "failed"]
# ... and the states only the master knows: waiting to be started again, or stopped for good.
WorkerState = Literal[ReportedState, "restarting", "stopped"]
WORKER_STATES: tuple[WorkerState, ...] = get_args(WorkerState)


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Job(Message):
    """One synthesis request. ``text=None``: the text follows in :class:`TextPiece` messages.

    With ``source_samples``, a voice conversion: no text; the source recording (mono float32
    little-endian at :data:`SOURCE_RATE`, that many samples) is the message's second frame."""

    type: Literal["job"] = "job"
    request_id: str
    text: str | None
    params: SynthesisParams
    voice_id: str | None = None
    voice_path: str | None = None  # the prepared clip (see common.voices.library)
    voice_hash: str | None = None  # its content hash: the cache key
    credit: int = Field(ge=1, description="Audio messages the worker may send before a Credit")
    timings: bool = False  # send a Timings message per text chunk (set by the master's adapters)
    source_samples: int | None = Field(None, ge=1)


class TextPiece(Message):
    """More text for a streaming job; ``flush`` speaks what is buffered, ``end`` closes it."""

    type: Literal["text"] = "text"
    request_id: str
    text: str = ""
    flush: bool = False
    end: bool = False


class Credit(Message):
    """The master forwarded ``chunks`` audio messages of this request to its client."""

    type: Literal["credit"] = "credit"
    request_id: str
    chunks: int = Field(1, ge=1)


class Cancel(Message):
    """Stop the request now; a Done with ``cancelled`` answers it."""

    type: Literal["cancel"] = "cancel"
    request_id: str


class InvalidateVoice(Message):
    """A voice was added, overwritten or deleted: drop its cached conditioning; if the new clip
    is given and the worker pre-caches voices, prepare it now."""

    type: Literal["invalidate_voice"] = "invalidate_voice"
    voice_id: str
    voice_path: str | None = None
    voice_hash: str | None = None


class Drain(Message):
    """Take no new jobs, finish those in flight, then exit."""

    type: Literal["drain"] = "drain"


class ModelInfo(Message):
    """Which model a worker has loaded: carried whole from its heartbeat to /system-status."""

    description: str  # the loaded model described: label, weights, device, directory
    variant: str
    label: str  # which model, e.g. 'chatterbox-multilingual v3' (ModelChoice.label)
    repo_id: str  # the Hub repository it is (or would be) downloaded from


class Heartbeat(Message):
    type: Literal["heartbeat"] = "heartbeat"
    worker_id: str
    generation: int
    pid: int
    state: ReportedState
    device: str
    capacity: int
    active: int
    model: ModelInfo | None = None  # once loaded
    error: str = ""
    cached_voices: list[str] = Field(default_factory=list)


class Started(Message):
    """The worker accepted the request: audio follows."""

    type: Literal["started"] = "started"
    request_id: str
    worker_id: str
    sample_rate: int


class Audio(Message):
    """Header of one PCM chunk (signed 16-bit little-endian mono); the bytes are frame two."""

    type: Literal["audio"] = "audio"
    request_id: str
    seq: int


class _TimingsHeader(Message):
    type: Literal["timings"] = "timings"
    request_id: str


class Timings(ChunkTimings, _TimingsHeader):
    """One text chunk's times (:class:`~common.timings.ChunkTimings`) of a job sent with
    ``timings``: sent before any Audio past the chunk's end, chunks in order, all before Done.

    The header is a base class so that its fields come first, as clients of /tts/stream see
    them (its ``timings`` events are these messages)."""


class Done(Message):
    type: Literal["done"] = "done"
    request_id: str
    audio_seconds: float
    first_audio_ms: float | None
    total_ms: float
    speech_tokens: int
    text_chunks: int
    cancelled: bool = False


ErrorCode = Literal[
    "invalid_request",
    "voice_not_found",
    "voice_unreadable",
    "cancelled",
    "worker_crashed",
    "worker_draining",
    "overloaded",
    "internal_error",
]


class Failed(Message):
    type: Literal["failed"] = "failed"
    request_id: str
    code: ErrorCode
    message: str
    field: str | None = None


ToWorker = Annotated[Job | TextPiece | Credit | Cancel, Field(discriminator="type")]
Control = Annotated[InvalidateVoice | Drain, Field(discriminator="type")]
FromWorker = Annotated[
    Heartbeat | Started | Audio | Timings | Done | Failed, Field(discriminator="type")
]

_to_worker: TypeAdapter[ToWorker] = TypeAdapter(ToWorker)
_control: TypeAdapter[Control] = TypeAdapter(Control)
_from_worker: TypeAdapter[FromWorker] = TypeAdapter(FromWorker)


def encode(message: Message, payload: bytes | None = None) -> list[bytes]:
    """The frames of ``message`` (and its payload) for ``send_multipart``."""
    frames = [message.model_dump_json().encode()]
    if payload is not None:
        frames.append(payload)
    return frames


def decode_to_worker(frames: list[bytes]) -> ToWorker:
    return _to_worker.validate_json(frames[0])


def source_of(job: Job, frames: list[bytes]) -> bytes | None:
    """A voice conversion's source frame (None for speech); ValueError if it is not the size
    ``source_samples`` says."""
    if job.source_samples is None:
        return None
    if len(frames) != 2 or len(frames[1]) != 4 * job.source_samples:
        raise ValueError(f"job {job.request_id}: the source frame is missing or of another size")
    return frames[1]


def decode_control(frames: list[bytes]) -> Control:
    return _control.validate_json(frames[0])


def decode_from_worker(frames: list[bytes]) -> tuple[FromWorker, bytes | None]:
    payload = frames[1] if len(frames) > 1 else None
    return _from_worker.validate_json(frames[0]), payload
