"""Find, load and describe a Chatterbox checkpoint.

Where the weights come from, in order (``common.model_files``): a local directory
(``MODEL_PATH``) in the upstream file layout; else the Hugging Face cache (``HF_HOME``); else a
download from the Hub into that cache. A Single Language Pack's files come from two repositories,
the pack's and the base one. When a file is found nowhere, one :class:`ModelNotFoundError` names
it, its repository, and the command that fetches it.
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

from common.model_files import ModelFiles, ModelFilesError, locate
from common.variants import RANDOM_MARKER, SINGLE_LANGUAGE_PACKS, ModelChoice, Part, Variant

from ..errors import InvalidCheckpointError, ModelNotFoundError
from .architecture import build_s3gen, build_t3, build_voice_encoder, drop_unused_t3_modules
from .chinese import multilingual_tokenizer
from .conditioning import VoiceConditioning
from .precision import cast_keeping_rotary, use_tf32
from .weights import Strictness, load_weights, log_dropped

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


def resolve_checkpoint(model: ModelChoice | Variant, model_path: str | Path | None) -> ModelFiles:
    """Where each file of the model is (see ``common.model_files``); a missing one raises
    :class:`ModelNotFoundError` naming it, its repository and the command that fetches it."""
    choice = model if isinstance(model, ModelChoice) else ModelChoice(model)
    try:
        return locate(choice, Path(model_path).expanduser() if model_path else None)
    except ModelFilesError as error:
        raise ModelNotFoundError(str(error)) from None


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
    """Load a checkpoint onto ``device``; ``variant`` defaults to the marker's, multilingual for
    a Single Language Pack, else English.

    ``repo_id`` is the Hub repository (a Single Language Pack, a fork) and ``t3_model`` the
    multilingual T3 file (upstream's ``t3_model``: "v2", "v3" or a file name). ``dtype`` is
    T3's, cast on the CPU before the move, its rotary frequencies kept in float32 (S3Gen and
    the voice encoder stay float32; on CUDA their matrix products use TF32)."""
    directory = Path(model_path) if model_path else None
    marker = read_marker(directory) if directory and directory.is_dir() else None
    pack = Variant.MULTILINGUAL if repo_id in SINGLE_LANGUAGE_PACKS.values() else None
    chosen = Variant(variant or (marker or {}).get("variant") or pack or Variant.ENGLISH)
    if marker and marker.get("variant") not in (None, chosen.value):
        raise InvalidCheckpointError(
            f"MODEL_PATH={directory} holds a {marker['variant']} checkpoint, but the variant "
            f"asked for is {chosen.value}: set MODEL_VARIANT={marker['variant']} or point "
            "MODEL_PATH elsewhere."
        )
    choice = ModelChoice(chosen, repo_id, t3_model)
    files = resolve_checkpoint(choice, directory)
    marker = read_marker(files.directory)
    arch = (marker or {}).get("architecture") or {}
    torch_device = device if isinstance(device, torch.device) else pick_device(device)
    if dtype not in DTYPES:
        raise InvalidCheckpointError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    ve, t3, s3gen = load_modules(choice, files, arch)
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
        tokenize=_tokenizer(chosen, files[Part.TOKENIZER]),
        device=torch_device,
        dtype=DTYPES[dtype],
        checkpoint_dir=files.directory,
        marker=marker,
    )
    conds_file = files.get(Part.BUILTIN_VOICE)
    if builtin_voice and conds_file:
        model.builtin_voice = VoiceConditioning.load(conds_file, torch_device)
    log.info("Loaded %s", model.describe())
    return model


def load_modules(
    choice: ModelChoice, files: ModelFiles, arch: dict[str, Any]
) -> tuple[VoiceEncoder, T3, S3Gen]:
    """The three modules, loaded file by file as upstream's ``from_local``: T3 whole
    (Turbo/Nano's ``tfmr.wte`` included) and then trimmed; S3Gen strictly except English's
    (``strict=False`` upstream) and a Single Language Pack's, whose published decoder lacks two
    buffers the S3 tokenizer computes: those are filled in, every learned key is required."""
    variant = choice.variant
    hint = f"Is MODEL_VARIANT={variant.value} right for this directory?"
    ve = build_voice_encoder()
    load_weights(ve, files[Part.VOICE_ENCODER], Strictness.STRICT, hint)
    t3 = build_t3(variant, arch.get("t3"))
    load_weights(t3, files[Part.T3], Strictness.STRICT, hint)
    log_dropped(files[Part.T3], drop_unused_t3_modules(t3, variant))
    s3gen = build_s3gen(variant, arch.get("s3gen"))
    strictness = Strictness.STRICT
    if variant is Variant.ENGLISH:
        strictness = Strictness.LOOSE
    elif choice.pack:
        strictness = Strictness.LEARNED
    load_weights(s3gen, files[Part.S3GEN], strictness, hint)
    return ve, t3, s3gen


def _tokenizer(variant: Variant, path: Path) -> Tokenize:
    if variant.turbo_family:
        from transformers import AutoTokenizer

        hf_tokenizer = AutoTokenizer.from_pretrained(str(path.parent))

        def turbo(text: str, language: str | None) -> list[int]:
            return list(hf_tokenizer(text)["input_ids"])

        return turbo
    if variant is Variant.MULTILINGUAL:
        return multilingual_tokenizer(path)
    from chatterbox.models.tokenizers import EnTokenizer

    english = EnTokenizer(str(path))

    def encode(text: str, language: str | None) -> list[int]:
        return list(english.encode(text))

    return encode
