"""Configuration: one pydantic-settings object, read from the environment and ``.env``.

Variable names and defaults follow the service specification (``API_KEY``, ``HOST``, ``PORT``,
``MODEL_PATH``, ``TTS_*`` ...). Torch-free, so the master reads it in milliseconds and hands the
same object to its worker processes (they read the same environment).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .openai_voices import parse_voice_map
from .params import (
    CfgWeight,
    ChunkChars,
    CrossfadeMilliseconds,
    Exaggeration,
    OverlapMethod,
    SliceTokens,
    SynthesisParams,
    Temperature,
    TrimMilliseconds,
    field_aliases,
)
from .variants import (
    DEFAULT_MULTILINGUAL_T3_MODEL,
    MULTILINGUAL_T3_MODELS,
    SINGLE_LANGUAGE_PACKS,
    Variant,
    multilingual_t3_file,
)

LogLevel = Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]
# KV-cache positions per T3 slot: a default 150-character chunk fits in every variant.
KV_CACHE_TOKENS = 1024
_DEFAULTS = SynthesisParams()
# Each TTS_* setting and the request parameter whose default it sets.
TTS_SETTINGS = {
    "tts_voice_exaggeration_factor": "exaggeration",
    "tts_cfg_guidance_weight": "cfg_weight",
    "tts_synthesis_temperature": "temperature",
    "tts_text_processing_chunk_size": "text_processing_chunk_size",
    "tts_audio_tokens_per_slice": "audio_tokens_per_slice",
    "tts_remove_leading_milliseconds": "remove_leading_milliseconds",
    "tts_remove_trailing_milliseconds": "remove_trailing_milliseconds",
    "tts_chunk_overlap_strategy": "chunk_overlap_method",
    "tts_crossfade_duration_milliseconds": "crossfade_duration_milliseconds",
}
ServiceMode = Literal["http", "runpod-queue"]


class Settings(BaseSettings):
    """Every variable the service reads. A bad value stops start-up naming the variable."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # --- Server (the specification's core settings) ---
    api_key: SecretStr | None = Field(
        None, description="Comma-separated keys; unset: only a loopback HOST is allowed"
    )
    host: str = "0.0.0.0"
    port: int = Field(8000, ge=1, le=65535)
    debug: bool = False
    log_level: LogLevel = "INFO"
    workers_per_device: int = Field(1, ge=1, le=64)
    concurrent_requests_per_worker: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Requests one worker serves at once, its T3 batch slots; unset or 'auto': "
        "what fits on its GPU (8 on a CPU)",
    )
    kv_cache_tokens: int = Field(
        KV_CACHE_TOKENS,
        ge=256,
        le=16384,
        description="KV-cache positions per slot, allocated up front: a text chunk's prompt "
        "and speech tokens must fit (1024 holds a 150-character chunk in every variant)",
    )
    batch_invariant: bool = Field(
        False,
        description="A seed gives the same speech whatever else shares the batch: every T3 "
        "step runs at the full slot count, so a lone stream costs what a full batch does",
    )
    cuda_graphs: bool = Field(
        True,
        description="On CUDA, replay each T3 decode step from a CUDA graph captured per batch "
        "and length bucket (falls back to eager, with the reason logged, if capture fails); "
        "ignored on a CPU",
    )
    voices_dir: Path = Path("voices")
    preloaded_voices_dir: Path = Path("preloaded-voices")
    cors_origins: str = "*"
    # --- Deployment (ours) ---
    data_dir: Path | None = Field(
        None,
        description="Persistent volume root (/workspace on RunPod pods, /runpod-volume on "
        "serverless): VOICES_DIR, PRELOADED_VOICES_DIR and HF_HOME default to folders in it",
    )
    hf_home: Path | None = Field(None, description="Hugging Face cache (downloaded weights)")
    port_health: int | None = Field(
        None, ge=1, le=65535, description="A second port answering too (RunPod's PORT_HEALTH)"
    )
    service_mode: ServiceMode = Field(
        "http", description="'http': the API on PORT; 'runpod-queue': RunPod's queue handler"
    )
    log_format: Literal["text", "json"] = "text"
    # --- ElevenLabs-compatible API ---
    elevenlabs_max_contexts: int = Field(
        5, ge=1, le=100, description="Contexts one multi-stream-input socket may hold open"
    )
    # --- OpenAI-compatible API (ours) ---
    openai_max_input_chars: int = Field(4096, ge=1, description="input limit, as OpenAI's")
    openai_default_voice: str | None = Field(
        None, description="Voice for OpenAI's built-in names (alloy ...); unset: the model's own"
    )
    openai_voice_map: str = Field(
        "", description="OpenAI names to library voices, e.g. alloy=anna,nova=bob.wav; "
        "the others speak OPENAI_DEFAULT_VOICE",
    )  # fmt: skip
    # --- Voices (ours) ---
    max_voice_upload_bytes: int = Field(20_000_000, ge=1000, description="Largest upload")
    max_voice_seconds: float = Field(120.0, gt=0, description="Longest reference clip accepted")
    voice_cache_size: int = Field(32, ge=1, le=10000, description="Voices kept ready per worker")
    precache_voices: bool = Field(
        False, description="Prepare every voice when a worker starts (else on first use)"
    )
    prepared_sweep_interval_seconds: float = Field(
        600.0, gt=0, description="How often a master sweeps prepared data no voice uses"
    )
    prepared_sweep_grace_seconds: float = Field(
        3600.0, ge=0, description="How long prepared data must go unused before it is removed"
    )
    # --- Server (ours) ---
    allow_unauthenticated: bool = Field(
        False, description="Serve without API_KEY on a non-loopback HOST (deliberately open)"
    )
    public_lists: bool = Field(
        False,
        description="Voice and model lists readable without a key (Open WebUI lists them "
        "without one); speech still needs the key",
    )
    tts_server_routes: bool = Field(
        False,
        description="Also answer Chatterbox-TTS-Server's routes (/tts, /get_predefined_voices "
        "...), as SillyTavern's Chatterbox provider calls them",
    )
    max_queued_requests: int = Field(
        16, ge=0, le=10000, description="Requests waiting for a free worker slot before 503"
    )
    queue_timeout_seconds: float = Field(30.0, gt=0, le=3600)
    retry_after_seconds: int = Field(2, ge=1, le=3600)
    stream_credit_chunks: int = Field(
        4, ge=1, le=256, description="Audio chunks a worker may send ahead of the client"
    )
    heartbeat_interval_seconds: float = Field(1.0, gt=0, le=60)
    heartbeat_timeout_seconds: float = Field(
        15.0, gt=0, le=3600, description="A ready worker silent this long is restarted"
    )
    worker_start_timeout_seconds: float = Field(
        900.0, gt=0, description="Model load time allowed before a worker counts as hung"
    )
    shutdown_timeout_seconds: float = Field(30.0, ge=0, le=3600)
    ws_max_text_chars: int = Field(
        100_000, ge=1, description="Most text one WebSocket utterance may send"
    )
    max_text_chars: int = Field(20_000, ge=1, description="Most characters in one text request")
    max_request_bytes: int = Field(
        1_000_000, ge=1000, description="Largest JSON request body or WebSocket message (413)"
    )

    model_path: str = Field("models", description="Local checkpoint directory (upstream layout)")
    model_variant: Variant | None = Field(
        None,
        description="Model to serve: chatterbox, chatterbox-turbo, chatterbox-nano or "
        "chatterbox-multilingual; unset: the checkpoint marker's, else chatterbox",
    )
    model_repo_id: str | None = Field(
        None,
        description="Hugging Face repository of the weights (owner/name, or a Single Language "
        f"Pack's code: {', '.join(SINGLE_LANGUAGE_PACKS)}); unset: the variant's own",
    )
    multilingual_t3_model: str = Field(
        DEFAULT_MULTILINGUAL_T3_MODEL,
        description="chatterbox-multilingual's T3 checkpoint: "
        f"{', '.join(MULTILINGUAL_T3_MODELS)} or a t3_*.safetensors file name (a Single "
        "Language Pack uses its own T3 unless this names a file)",
    )
    pkuseg_home: Path | None = Field(
        None, description="Where the pkuseg model for Chinese is (unset: ~/.pkuseg)"
    )
    device: str = Field(
        "auto",
        description="'auto' (every GPU the service may use, else cpu), 'cpu', 'cuda:N' (the N-th "
        "of those GPUs: NVML's, limited by an inherited CUDA_VISIBLE_DEVICES)",
    )
    model_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    # S3Gen's compute dtype: bfloat16 autocasts its encoder, flow and vocoder convolutions (the
    # vocoder's source and STFTs stay float32); float32 is upstream's arithmetic.
    s3gen_dtype: Literal["float32", "bfloat16"] = "float32"

    # Deployment-wide defaults of request parameters (TTS_SETTINGS): the parameters' own
    # defaults and bounds, from SynthesisParams.
    tts_voice_exaggeration_factor: Exaggeration = _DEFAULTS.exaggeration
    tts_cfg_guidance_weight: CfgWeight = _DEFAULTS.cfg_weight
    tts_synthesis_temperature: Temperature = _DEFAULTS.temperature
    tts_text_processing_chunk_size: ChunkChars = _DEFAULTS.text_processing_chunk_size
    tts_audio_tokens_per_slice: SliceTokens = _DEFAULTS.audio_tokens_per_slice
    tts_remove_leading_milliseconds: TrimMilliseconds = _DEFAULTS.remove_leading_milliseconds
    tts_remove_trailing_milliseconds: TrimMilliseconds = _DEFAULTS.remove_trailing_milliseconds
    tts_chunk_overlap_strategy: OverlapMethod = _DEFAULTS.chunk_overlap_method
    tts_crossfade_duration_milliseconds: CrossfadeMilliseconds = (
        _DEFAULTS.crossfade_duration_milliseconds
    )
    tts_speech_token_queue_max_size: int = Field(2, ge=1, le=64)
    tts_pcm_chunk_queue_max_size: int = Field(3, ge=1, le=64)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator(
        "model_variant", "port_health", "data_dir", "hf_home", "concurrent_requests_per_worker",
        "model_repo_id", "pkuseg_home", mode="before",
    )  # fmt: skip
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """``MODEL_VARIANT=`` (a Docker build argument left empty) means unset, not invalid;
        ``CONCURRENT_REQUESTS_PER_WORKER=auto`` too."""
        return None if value in ("", "auto") else value

    @field_validator("model_repo_id")
    @classmethod
    def _repo_id(cls, value: str | None) -> str | None:
        """A Single Language Pack's code stands for its repository."""
        if value is None:
            return None
        repo = SINGLE_LANGUAGE_PACKS.get(value.strip(), value.strip())
        owner, _, name = repo.partition("/")
        if not owner or not name or "/" in name or " " in repo:
            raise ValueError(
                f"{value!r} is not a Hugging Face repository (owner/name) nor a Single Language "
                f"Pack code ({', '.join(SINGLE_LANGUAGE_PACKS)})"
            )
        return repo

    @field_validator("openai_voice_map")
    @classmethod
    def _voice_map(cls, value: str) -> str:
        parse_voice_map(value)  # raises, naming the pair at fault
        return value

    @field_validator("multilingual_t3_model")
    @classmethod
    def _t3_model(cls, value: str) -> str:
        multilingual_t3_file(value)  # raises, naming the choices, for an unknown one
        return value

    @model_validator(mode="after")
    def _language_pack_is_multilingual(self) -> Settings:
        """A Single Language Pack is a multilingual model: it implies the variant."""
        if self.model_repo_id in SINGLE_LANGUAGE_PACKS.values():
            if self.model_variant not in (None, Variant.MULTILINGUAL):
                raise ValueError(
                    f"MODEL_REPO_ID={self.model_repo_id} is a Single Language Pack, a "
                    f"chatterbox-multilingual model: unset MODEL_VARIANT or set it to "
                    f"chatterbox-multilingual, not {self.model_variant}"
                )
            self.model_variant = Variant.MULTILINGUAL
        return self

    @model_validator(mode="after")
    def _place_on_volume(self) -> Settings:
        """Put voices and the weights cache on ``DATA_DIR`` unless set one by one."""
        if self.data_dir is not None:
            explicit = self.model_fields_set
            if "voices_dir" not in explicit:
                self.voices_dir = self.data_dir / "voices"
            if "preloaded_voices_dir" not in explicit:
                self.preloaded_voices_dir = self.data_dir / "preloaded-voices"
            if "hf_home" not in explicit:
                self.hf_home = self.data_dir / "huggingface-cache"
            if "pkuseg_home" not in explicit:
                self.pkuseg_home = self.data_dir / "pkuseg"
        return self

    def export_environment(self) -> None:
        """Set ``HF_HOME`` for huggingface_hub and ``PKUSEG_HOME`` for spacy_pkuseg (both read
        at their import) and for child processes."""
        if self.hf_home is not None:
            os.environ["HF_HOME"] = str(self.hf_home)
        if self.pkuseg_home is not None:
            os.environ["PKUSEG_HOME"] = str(self.pkuseg_home)

    @property
    def api_keys(self) -> list[str]:
        raw = self.api_key.get_secret_value() if self.api_key else ""
        return [key.strip() for key in raw.split(",") if key.strip()]

    @property
    def openai_voice_aliases(self) -> dict[str, str]:
        """OPENAI_VOICE_MAP as {OpenAI name: voice id}."""
        return parse_voice_map(self.openai_voice_map)

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    @property
    def host_is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def synthesis_defaults(self, **overrides: object) -> SynthesisParams:
        """Request parameters with this deployment's defaults, then ``overrides`` on top."""
        values = {param: getattr(self, setting) for setting, param in TTS_SETTINGS.items()}
        aliases = field_aliases()
        values.update({aliases.get(k, k): v for k, v in overrides.items() if v is not None})
        return SynthesisParams.model_validate(values)
