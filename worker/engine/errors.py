"""Errors the engine raises on purpose: each carries a message fit to show a user as it is."""

from __future__ import annotations


class EngineError(Exception):
    """Base class: ``str(error)`` is a complete, actionable message (no stack trace needed)."""


class ModelNotFoundError(EngineError):
    """The checkpoint is neither in ``MODEL_PATH`` nor obtainable from the Hugging Face Hub."""


class InvalidCheckpointError(EngineError):
    """The checkpoint files exist but do not fit the variant or architecture asked for."""


class InvalidRequestError(EngineError):
    """A synthesis request that can never succeed (empty text, unknown language ...).

    ``field`` names the offending request parameter, so a server can answer with a 4xx naming it.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class NonFiniteLogitsError(EngineError):
    """T3's logits for one request held NaN or inf: that request ends, the batch goes on."""

    def __init__(self) -> None:
        super().__init__(
            "the model produced non-finite logits (NaN or inf) for this request, so its speech "
            "was stopped; the other requests were not affected. Retry; if it recurs with this "
            "voice or text, report it (with MODEL_DTYPE and the model), and try "
            "MODEL_DTYPE=float32"
        )
