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
