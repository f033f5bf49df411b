"""Per-request synthesis parameters, validated before any work starts (torch-free).

Names follow the service specification (``cfg_guidance_weight`` is accepted for ``cfg_weight``,
``synthesis_temperature`` for ``temperature``, ``exaggeration`` for the voice exaggeration
factor); defaults are the specification's ``TTS_*`` defaults.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

OverlapMethod = Literal["full", "zero"]

# The bounds of the parameters a deployment can also set a default for (the TTS_* settings).
Exaggeration = Annotated[float, Field(ge=0.0, le=2.0)]
CfgWeight = Annotated[float, Field(ge=0.0, le=5.0)]
Temperature = Annotated[float, Field(ge=0.0, le=5.0)]
ChunkChars = Annotated[int, Field(ge=20, le=2000)]
SliceTokens = Annotated[int, Field(ge=8, le=500)]
TrimMilliseconds = Annotated[int, Field(ge=0, le=5000)]
CrossfadeMilliseconds = Annotated[int, Field(ge=0, le=200)]
# Below this every top_p keeps only the most likely token (no token of a few thousand has less
# than 1e-4 of the mass when it is the likeliest); far below it, float32 rounds top_p to 0, and
# sampling from nothing failed the stream (schemathesis found top_p=5e-324).
MIN_TOP_P = 1e-6


class SynthesisParams(BaseModel):
    """How to speak one text. Every field has a safe range; out-of-range values are rejected."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    exaggeration: Exaggeration = Field(
        0.5, validation_alias=AliasChoices("exaggeration", "voice_exaggeration_factor")
    )
    cfg_weight: CfgWeight = Field(
        0.5, validation_alias=AliasChoices("cfg_weight", "cfg_guidance_weight")
    )
    temperature: Temperature = Field(
        0.8, validation_alias=AliasChoices("temperature", "synthesis_temperature")
    )
    # None: the variant's upstream default (see worker.engine.t3.sampling.VARIANT_SAMPLING).
    top_p: float | None = Field(None, ge=MIN_TOP_P, le=1.0)
    top_k: int | None = Field(None, ge=0, le=10000)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    repetition_penalty: float | None = Field(None, ge=1.0, le=5.0)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    language: str | None = Field(None, min_length=2, max_length=8)
    text_processing_chunk_size: ChunkChars = 150
    audio_tokens_per_slice: SliceTokens = 35
    remove_leading_milliseconds: TrimMilliseconds = 0
    remove_trailing_milliseconds: TrimMilliseconds = 0
    chunk_overlap_method: OverlapMethod = "full"
    crossfade_duration_milliseconds: CrossfadeMilliseconds = 30
    # Benchmarking aid: generate exactly this many speech tokens per text chunk, ignoring EOS.
    fixed_token_count: int | None = Field(None, ge=1, le=4000)


def field_aliases() -> dict[str, str]:
    """Each accepted alias (``cfg_guidance_weight`` ...) mapped to its field name."""
    aliases: dict[str, str] = {}
    for name, info in SynthesisParams.model_fields.items():
        choices = getattr(info.validation_alias, "choices", None) or []
        for choice in choices:
            if isinstance(choice, str) and choice != name:
                aliases[choice] = name
    return aliases
