"""Chatterbox-TTS-Server's routes, as SillyTavern's Chatterbox provider calls them: a thin
adapter over the speech core, served when ``TTS_SERVER_ROUTES`` is on."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["Chatterbox-TTS-Server"])
