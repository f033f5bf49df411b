"""Configuration: one pydantic-settings object, read from the environment and ``.env``.

Variable names and defaults follow the service specification (``MODEL_PATH``, ``TTS_*`` ...).
Torch-free, so any process (the master included) can read it in milliseconds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .engine.params import OverlapMethod, SynthesisParams
from .engine.variants import Variant


class Settings(BaseSettings):
    """Every variable the engine reads. A bad value stops start-up naming the variable."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    model_path: str = Field("models", description="Local checkpoint directory (upstream layout)")
    model_variant: Variant | None = Field(
        None, description="Model to serve; unset: the checkpoint marker's, else chatterbox"
    )
    device: str = Field("auto", description="'auto' (cuda:N if present, else cpu), 'cpu', 'cuda:0'")
    model_dtype: Literal["float32", "bfloat16", "float16"] = "float32"

    tts_voice_exaggeration_factor: float = Field(0.5, ge=0.0, le=2.0)
    tts_cfg_guidance_weight: float = Field(0.5, ge=0.0, le=5.0)
    tts_synthesis_temperature: float = Field(0.8, ge=0.0, le=5.0)
    tts_text_processing_chunk_size: int = Field(150, ge=20, le=2000)
    tts_audio_tokens_per_slice: int = Field(35, ge=8, le=500)
    tts_remove_leading_milliseconds: int = Field(0, ge=0, le=5000)
    tts_remove_trailing_milliseconds: int = Field(0, ge=0, le=5000)
    tts_chunk_overlap_strategy: OverlapMethod = "full"
    tts_crossfade_duration_milliseconds: int = Field(30, ge=0, le=200)
    tts_speech_token_queue_max_size: int = Field(2, ge=1, le=64)
    tts_pcm_chunk_queue_max_size: int = Field(3, ge=1, le=64)

    def synthesis_defaults(self, **overrides: object) -> SynthesisParams:
        """Request parameters with this deployment's defaults, then ``overrides`` on top."""
        values: dict[str, object] = {
            "exaggeration": self.tts_voice_exaggeration_factor,
            "cfg_weight": self.tts_cfg_guidance_weight,
            "temperature": self.tts_synthesis_temperature,
            "text_processing_chunk_size": self.tts_text_processing_chunk_size,
            "audio_tokens_per_slice": self.tts_audio_tokens_per_slice,
            "remove_leading_milliseconds": self.tts_remove_leading_milliseconds,
            "remove_trailing_milliseconds": self.tts_remove_trailing_milliseconds,
            "chunk_overlap_method": self.tts_chunk_overlap_strategy,
            "crossfade_duration_milliseconds": self.tts_crossfade_duration_milliseconds,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return SynthesisParams.model_validate(values)
