"""ElevenLabs' voice listing (``GET /v1/voices``, ``GET /v2/voices``, ``GET /v1/voices/{id}``)
over the voice library, in ElevenLabs' shapes."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["ElevenLabs"])
