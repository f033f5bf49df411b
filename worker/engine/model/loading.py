"""Find, load and describe a Chatterbox checkpoint.

Where the weights come from, in order: a local directory (``MODEL_PATH``) in the upstream file
layout; else the Hugging Face cache (``HF_HOME``); else a download from the Hub into that cache,
with progress bars. When none works, one :class:`ModelNotFoundError` says what was looked for
where, and how to fix it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from chatterbox.models.s3gen import S3Gen
from chatterbox.models.t3 import T3
from chatterbox.models.voice_encoder import VoiceEncoder

from common.variants import FILES, RANDOM_MARKER, ModelChoice, Variant

from ..errors import InvalidCheckpointError, ModelNotFoundError
from .architecture import build_s3gen, build_t3, build_voice_encoder, drop_unused_t3_modules
from .chinese import multilingual_tokenizer
from .conditioning import VoiceConditioning
from .precision import cast_keeping_rotary, use_tf32
from .weights import load_weights, log_dropped

log = logging.getLogger(__name__)

Tokenize = Callable[[str, str | None], list[int]]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    """Everything one worker needs to synthesize with one checkpoint (shared, read-only)."""

    variant: Variant
    choice: ModelChoice  # which files of which repository: ``choice.label`` names the model
    t3: T3
    s3gen: S3Gen
    voice_encoder: VoiceEncoder
    tokenize: Tokenize
    device: torch.device
    dtype: torch.dtype
    checkpoint_dir: Path
    marker: dict[str, Any] | None = None  # random_weights.json of a random checkpoint
    builtin_voice: VoiceConditioning | None = None

    @property
    def random_weights(self) -> bool:
        return bool(self.marker and self.marker.get("random_weights"))

    @property
    def weights(self) -> str:
        return "random weights" if self.random_weights else "pretrained"

    def describe(self) -> str:
        return f"{self.choice.label} ({self.weights}) on {self.device} [{self.checkpoint_dir}]"


def pick_device(requested: str | None = None, index: int = 0) -> torch.device:
    """``requested`` if given ('cpu', 'cuda:1' ...), else cuda:index if CUDA exists, else cpu."""
    if requested and requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device(f"cuda:{index % torch.cuda.device_count()}")
    return torch.device("cpu")


def resolve_checkpoint(model: ModelChoice | Variant, model_path: str | Path | None) -> Path:
    """The directory holding the model's files: ``model_path`` if complete, else the HF cache."""
    choice = model if isinstance(model, ModelChoice) else ModelChoice(model)
    local_missing: list[str] = []
    if model_path:
        directory = Path(model_path).expanduser()
        local_missing = [f for f in choice.files.required if not (directory / f).is_file()]
        if directory.is_dir() and not local_missing:
            return directory
    return _from_hub(choice, Path(model_path) if model_path else None, local_missing)


def _from_hub(choice: ModelChoice, model_path: Path | None, local_missing: list[str]) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.constants import HF_HUB_CACHE

    files = choice.files
    patterns = files.hub_patterns
    try:
        try:
            path = snapshot_download(files.repo_id, allow_patterns=patterns, local_files_only=True)
        except Exception:
            log.info(
                "Downloading %s from the Hugging Face Hub into %s", files.repo_id, HF_HUB_CACHE
            )
            path = snapshot_download(files.repo_id, allow_patterns=patterns)
    except Exception as error:
        raise ModelNotFoundError(
            _not_found_message(choice, model_path, local_missing, HF_HUB_CACHE, error)
        ) from None
    return Path(str(path))


def _not_found_message(
    choice: ModelChoice,
    model_path: Path | None,
    local_missing: list[str],
    cache: str,
    error: Exception,
) -> str:
    files = choice.files
    where = (
        f"MODEL_PATH={model_path.resolve()} lacks {', '.join(local_missing)}"
        + _other_t3_files(choice, model_path, local_missing)
        if model_path
        else "MODEL_PATH is not set"
    )
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    return (
        f"No {choice.label} weights found. Looked for {', '.join(files.required)}: "
        f"{where}; the Hugging Face cache ({cache}) has no copy of {files.repo_id}, and "
        f"downloading it failed ({reason}). Fix: copy the files of {files.repo_id} into "
        f"MODEL_PATH, or allow network access to the Hub (and unset HF_HUB_OFFLINE), or point "
        f"HF_HOME at a cache that holds them. For tests without weights: python "
        f"scripts/make_random_checkpoint.py --variant {choice.variant.value} --size tiny DIR, "
        f"then MODEL_PATH=DIR."
    )


def _other_t3_files(choice: ModelChoice, directory: Path, local_missing: list[str]) -> str:
    """For a multilingual directory without the T3 file asked for: the ones it has instead."""
    if choice.variant is not Variant.MULTILINGUAL or choice.files.t3 not in local_missing:
        return ""
    present = (
        sorted(p.name for p in directory.glob("t3_*.safetensors")) if directory.is_dir() else []
    )
    if not present:
        return " (and holds no t3_*.safetensors file)"
    return (
        f" (it holds {', '.join(present)}: MULTILINGUAL_T3_MODEL picks the multilingual T3 "
        "file, e.g. v2 or v3)"
    )


def read_marker(directory: Path) -> dict[str, Any] | None:
    marker = directory / RANDOM_MARKER
    if not marker.is_file():
        return None
    data: dict[str, Any] = json.loads(marker.read_text())
    return data


def load_model(
    model_path: str | Path | None,
    variant: Variant | str | None = None,
    device: str | torch.device | None = None,
    dtype: str = "float32",
    builtin_voice: bool = True,
    *,
    repo_id: str | None = None,
    t3_model: str | None = None,
) -> LoadedModel:
    """Load a checkpoint onto ``device``; ``variant`` defaults to the marker's or English.

    ``repo_id`` is the Hub repository (a Single Language Pack, a fork) and ``t3_model`` the
    multilingual T3 file (upstream's ``t3_model``: "v2", "v3" or a file name). ``dtype`` is
    T3's, cast on the CPU before the move, its rotary frequencies kept in float32 (S3Gen and
    the voice encoder stay float32; on CUDA their matrix products use TF32)."""
    directory = Path(model_path) if model_path else None
    marker = read_marker(directory) if directory and directory.is_dir() else None
    chosen = Variant(variant or (marker or {}).get("variant") or Variant.ENGLISH)
    if marker and marker.get("variant") not in (None, chosen.value):
        raise InvalidCheckpointError(
            f"MODEL_PATH={directory} holds a {marker['variant']} checkpoint, but the variant "
            f"asked for is {chosen.value}: set MODEL_VARIANT={marker['variant']} or point "
            "MODEL_PATH elsewhere."
        )
    choice = ModelChoice(chosen, repo_id, t3_model)
    checkpoint = resolve_checkpoint(choice, directory)
    marker = read_marker(checkpoint)
    arch = (marker or {}).get("architecture") or {}
    torch_device = device if isinstance(device, torch.device) else pick_device(device)
    if dtype not in DTYPES:
        raise InvalidCheckpointError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    ve, t3, s3gen = load_modules(choice, checkpoint, arch)
    cast_keeping_rotary(t3, DTYPES[dtype])  # on the CPU: a float32 copy never reaches the GPU
    for module in (ve, t3, s3gen):
        module.to(torch_device).eval()
    use_tf32(torch_device)
    model = LoadedModel(
        variant=chosen,
        choice=choice,
        t3=t3,
        s3gen=s3gen,
        voice_encoder=ve,
        tokenize=_tokenizer(chosen, checkpoint),
        device=torch_device,
        dtype=DTYPES[dtype],
        checkpoint_dir=checkpoint,
        marker=marker,
    )
    conds_file = checkpoint / FILES[chosen].builtin_voice
    if builtin_voice and conds_file.is_file():
        model.builtin_voice = VoiceConditioning.load(conds_file, torch_device)
    log.info("Loaded %s", model.describe())
    return model


def load_modules(
    choice: ModelChoice, checkpoint: Path, arch: dict[str, Any]
) -> tuple[VoiceEncoder, T3, S3Gen]:
    """The three modules of ``checkpoint``, loaded file by file as upstream's ``from_local``:
    T3 whole (Turbo/Nano's ``tfmr.wte`` included) and then trimmed; S3Gen strictly except
    English's (``strict=False`` upstream)."""
    variant, files = choice.variant, choice.files
    hint = f"Is MODEL_VARIANT={variant.value} right for this directory?"
    ve = build_voice_encoder()
    load_weights(ve, checkpoint / files.voice_encoder, strict=True, hint=hint)
    t3 = build_t3(variant, arch.get("t3"))
    load_weights(t3, checkpoint / files.t3, strict=True, hint=hint)
    log_dropped(checkpoint / files.t3, drop_unused_t3_modules(t3, variant))
    s3gen = build_s3gen(variant, arch.get("s3gen"))
    strict = variant is not Variant.ENGLISH
    load_weights(s3gen, checkpoint / files.s3gen, strict=strict, hint=hint)
    return ve, t3, s3gen


def _tokenizer(variant: Variant, checkpoint: Path) -> Tokenize:
    if variant.turbo_family:
        from transformers import AutoTokenizer

        hf_tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))

        def turbo(text: str, language: str | None) -> list[int]:
            return list(hf_tokenizer(text)["input_ids"])

        return turbo
    if variant is Variant.MULTILINGUAL:
        return multilingual_tokenizer(checkpoint / FILES[variant].tokenizer[0])
    from chatterbox.models.tokenizers import EnTokenizer

    english = EnTokenizer(str(checkpoint / FILES[variant].tokenizer[0]))

    def encode(text: str, language: str | None) -> list[int]:
        return list(english.encode(text))

    return encode
