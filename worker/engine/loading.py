"""Find, load and describe a Chatterbox checkpoint.

Where the weights come from, in order: a local directory (``MODEL_PATH``) in the upstream file
layout; else the Hugging Face cache (``HF_HOME``); else a download from the Hub into that cache,
with progress bars. When none works, one :class:`ModelNotFoundError` says what was looked for
where, and how to fix it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from chatterbox.models.s3gen import S3Gen
from chatterbox.models.t3 import T3
from chatterbox.models.voice_encoder import VoiceEncoder
from safetensors.torch import load_file

from common.variants import FILES, RANDOM_MARKER, SUPPORTED_LANGUAGES, Variant

from .architecture import build_s3gen, build_t3, build_voice_encoder
from .conditioning import VoiceConditioning
from .errors import EngineError, InvalidCheckpointError, InvalidRequestError, ModelNotFoundError

log = logging.getLogger(__name__)

Tokenize = Callable[[str, str | None], list[int]]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    """Everything one worker needs to synthesize with one checkpoint (shared, read-only)."""

    variant: Variant
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
        return f"{self.variant.value} ({self.weights}) on {self.device} [{self.checkpoint_dir}]"


def pick_device(requested: str | None = None, index: int = 0) -> torch.device:
    """``requested`` if given ('cpu', 'cuda:1' ...), else cuda:index if CUDA exists, else cpu."""
    if requested and requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device(f"cuda:{index % torch.cuda.device_count()}")
    return torch.device("cpu")


def resolve_checkpoint(variant: Variant, model_path: str | Path | None) -> Path:
    """The directory holding ``variant``'s files: ``model_path`` if complete, else the HF cache."""
    files = FILES[variant]
    local_missing: list[str] = []
    if model_path:
        directory = Path(model_path).expanduser()
        local_missing = [f for f in files.required if not (directory / f).is_file()]
        if directory.is_dir() and not local_missing:
            return directory
    return _from_hub(variant, Path(model_path) if model_path else None, local_missing)


def _from_hub(variant: Variant, model_path: Path | None, local_missing: list[str]) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.constants import HF_HUB_CACHE

    files = FILES[variant]
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
            _not_found_message(variant, model_path, local_missing, HF_HUB_CACHE, error)
        ) from None
    return Path(str(path))


def _not_found_message(
    variant: Variant,
    model_path: Path | None,
    local_missing: list[str],
    cache: str,
    error: Exception,
) -> str:
    files = FILES[variant]
    where = (
        f"MODEL_PATH={model_path.resolve()} lacks {', '.join(local_missing)}"
        if model_path
        else "MODEL_PATH is not set"
    )
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    return (
        f"No {variant.value} weights found. Looked for {', '.join(files.required)}: "
        f"{where}; the Hugging Face cache ({cache}) has no copy of {files.repo_id}, and "
        f"downloading it failed ({reason}). Fix: copy the files of {files.repo_id} into "
        f"MODEL_PATH, or allow network access to the Hub (and unset HF_HUB_OFFLINE), or point "
        f"HF_HOME at a cache that holds them. For tests without weights: python "
        f"scripts/make_random_checkpoint.py --variant {variant.value} --size tiny DIR, "
        f"then MODEL_PATH=DIR."
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
) -> LoadedModel:
    """Load a checkpoint onto ``device``; ``variant`` defaults to the marker's or English."""
    directory = Path(model_path) if model_path else None
    marker = read_marker(directory) if directory and directory.is_dir() else None
    chosen = Variant(variant or (marker or {}).get("variant") or Variant.ENGLISH)
    if marker and marker.get("variant") not in (None, chosen.value):
        raise InvalidCheckpointError(
            f"MODEL_PATH={directory} holds a {marker['variant']} checkpoint, but the variant "
            f"asked for is {chosen.value}: set MODEL_VARIANT={marker['variant']} or point "
            "MODEL_PATH elsewhere."
        )
    checkpoint = resolve_checkpoint(chosen, directory)
    marker = read_marker(checkpoint)
    arch = (marker or {}).get("architecture") or {}
    torch_device = device if isinstance(device, torch.device) else pick_device(device)
    if dtype not in DTYPES:
        raise InvalidCheckpointError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    modules = _load_modules(chosen, checkpoint, arch)
    ve, t3, s3gen = (m.to(torch_device).eval() for m in modules)
    t3.to(DTYPES[dtype])
    model = LoadedModel(
        variant=chosen,
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


def _load_modules(
    variant: Variant, checkpoint: Path, arch: dict[str, Any]
) -> tuple[VoiceEncoder, T3, S3Gen]:
    files = FILES[variant]
    ve = build_voice_encoder()
    t3 = build_t3(variant, arch.get("t3"))
    s3gen = build_s3gen(variant, arch.get("s3gen"))
    try:
        ve.load_state_dict(_read_state(checkpoint / files.voice_encoder))
        t3_state = _read_state(checkpoint / files.t3)
        if "model" in t3_state:
            t3_state = t3_state["model"][0]
        t3.load_state_dict(t3_state)
        missing, unexpected = s3gen.load_state_dict(
            _read_state(checkpoint / files.s3gen), strict=False
        )
    except RuntimeError as error:
        raise InvalidCheckpointError(
            f"The weights in {checkpoint} do not fit the {variant.value} architecture "
            f"({str(error).splitlines()[0]}). Is MODEL_VARIANT right for this directory?"
        ) from None
    ignorable = ("tokenizer._mel_filters", "tokenizer.window")
    if unexpected or [k for k in missing if k not in ignorable]:
        raise InvalidCheckpointError(
            f"{checkpoint / files.s3gen} does not fit S3Gen: {len(missing)} missing and "
            f"{len(unexpected)} unexpected tensors. Is MODEL_VARIANT right for this directory?"
        )
    return ve, t3, s3gen


def _read_state(path: Path) -> dict[str, Any]:
    if path.suffix == ".safetensors":
        return dict(load_file(str(path)))
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return state


def _tokenizer(variant: Variant, checkpoint: Path) -> Tokenize:
    if variant.turbo_family:
        from transformers import AutoTokenizer

        hf_tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))

        def turbo(text: str, language: str | None) -> list[int]:
            return list(hf_tokenizer(text)["input_ids"])

        return turbo
    if variant is Variant.MULTILINGUAL:
        return _multilingual_tokenizer(checkpoint / FILES[variant].tokenizer[0])
    from chatterbox.models.tokenizers import EnTokenizer

    english = EnTokenizer(str(checkpoint / FILES[variant].tokenizer[0]))

    def encode(text: str, language: str | None) -> list[int]:
        return list(english.encode(text))

    return encode


def _multilingual_tokenizer(vocab: Path) -> Tokenize:
    """Upstream's ``MTLTokenizer``, with its Chinese converter built on first use only.

    ``MTLTokenizer.__init__`` builds a ``ChineseCangjieConverter``, which downloads a Cangjie
    table from the Hub and the pkuseg segmenter model from GitHub: offline that fails (or waits)
    for every language. Here the tokenizer is assembled as its ``__init__`` does, and the
    converter is built the first time Chinese text arrives.
    """
    from chatterbox.models.tokenizers.tokenizer import MTLTokenizer
    from tokenizers import Tokenizer

    tokenizer: MTLTokenizer = MTLTokenizer.__new__(MTLTokenizer)
    tokenizer.tokenizer = Tokenizer.from_file(str(vocab))
    tokenizer.check_vocabset_sot_eot()
    tokenizer.cangjie_converter = _LazyCangjie(vocab.parent)
    lock = threading.Lock()

    def encode(text: str, language: str | None) -> list[int]:
        if not language or language.lower() not in SUPPORTED_LANGUAGES:
            raise InvalidRequestError(
                "language",
                f"language must be one of {', '.join(SUPPORTED_LANGUAGES)} for "
                f"chatterbox-multilingual, not {language!r}",
            )
        with lock:  # the Japanese/Korean/Chinese normalisers keep module-level state
            return list(tokenizer.encode(text, language_id=language.lower()))

    return encode


class _LazyCangjie:
    """Builds upstream's ``ChineseCangjieConverter`` when Chinese is first spoken."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self.converter: Callable[[str], str] | None = None

    def __call__(self, text: str) -> str:
        if self.converter is None:
            from chatterbox.models.tokenizers.tokenizer import ChineseCangjieConverter

            try:
                self.converter = ChineseCangjieConverter(str(self.model_dir))
            except Exception as error:
                raise EngineError(
                    "Chinese text needs the pkuseg segmenter model and the Cangjie table, which "
                    f"could not be loaded ({type(error).__name__}); run once with network access "
                    "so they are cached."
                ) from None
        return self.converter(text)
