"""The engine's settings, read from ``Settings`` in one place: a worker and the command line
build their model and engine from the same record.

Imports torch (through the engine): import it only once the environment is set up.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.settings import Settings
from common.variants import Variant

from .engine.model.loading import LoadedModel, load_model
from .engine.pipeline import DEFAULT_MAX_WINDOWS, StreamingEngine
from .engine.request_state import QueueBounds


@dataclass(frozen=True)
class EngineConfig:
    model_path: str
    variant: Variant | str | None
    device: str
    dtype: str
    repo_id: str | None
    t3_model: str
    bounds: QueueBounds
    context: int  # KV positions per slot
    batch_invariant: bool
    cuda_graphs: bool
    s3gen_dtype: str = "float32"
    max_windows: int = DEFAULT_MAX_WINDOWS  # S3Gen windows decoded together

    def load_model(self) -> LoadedModel:
        return load_model(
            self.model_path, variant=self.variant, device=self.device, dtype=self.dtype,
            repo_id=self.repo_id, t3_model=self.t3_model,
        )  # fmt: skip

    def engine(self, model: LoadedModel, slots: int, threads: int | None = None) -> StreamingEngine:
        return StreamingEngine(
            model, self.bounds, slots, self.context, self.max_windows, threads=threads,
            batch_invariant=self.batch_invariant, cuda_graphs=self.cuda_graphs,
            s3gen_dtype=self.s3gen_dtype,
        )  # fmt: skip


def engine_config(
    settings: Settings,
    *,
    model_path: str | None = None,
    variant: str | None = None,
    device: str | None = None,
) -> EngineConfig:
    """The engine ``settings`` describe; the arguments, where given, choose another checkpoint,
    variant or device (a worker's own device, the command line's options)."""
    return EngineConfig(
        model_path=model_path or settings.model_path,
        variant=variant or settings.model_variant,
        device=device or settings.device,
        dtype=settings.model_dtype,
        repo_id=settings.model_repo_id,
        t3_model=settings.multilingual_t3_model,
        bounds=QueueBounds(
            settings.tts_speech_token_queue_max_size, settings.tts_pcm_chunk_queue_max_size
        ),
        context=settings.kv_cache_tokens,
        batch_invariant=settings.batch_invariant,
        cuda_graphs=settings.cuda_graphs,
        s3gen_dtype=settings.s3gen_dtype,
    )
