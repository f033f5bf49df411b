"""Write random-weight checkpoints in the upstream file layout.

No model weights can be downloaded where this project is built and tested, so every test and CPU
benchmark runs on checkpoints written here from the real upstream classes: ``tiny`` at reduced
sizes (fast on two CPU cores), ``full`` at the real sizes (for GPU timing). Each holds exactly the
files upstream's ``from_local`` reads, in the real files' shape: every module's whole state dict
as upstream constructs it, before anything upstream deletes after loading (Turbo/Nano's
``tfmr.wte``). The directory loads through the same ``MODEL_PATH`` code path as real weights; its
``random_weights.json`` marker makes everything that reports the model say "random weights", and
carries the reduced architecture.
"""

from __future__ import annotations

import json
import math
import os
import string
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models

from common.audio import SAMPLE_RATE
from common.variants import (
    FILES,
    MULTILINGUAL_T3_MODELS,
    PACK_S3GEN,
    RANDOM_MARKER,
    SINGLE_LANGUAGE_PACKS,
    SUPPORTED_LANGUAGES,
    Variant,
)

from .architecture import build_s3gen, build_t3, build_voice_encoder, count_parameters
from .random_chinese import write_chinese_assets
from .weights import DERIVED_BUFFERS

SPECIAL_TOKENS = ["[START]", "[STOP]", "[UNK]", "[SPACE]", "[PAD]"]

TINY_S3GEN: dict[str, Any] = {
    "tokenizer": {"n_audio_state": 128, "n_audio_head": 2, "n_audio_layer": 1},
    "encoder": {"attention_heads": 4, "linear_units": 256, "num_blocks": 1},
    "decoder": {
        "channels": [64],
        "attention_head_dim": 32,
        "n_blocks": 1,
        "num_mid_blocks": 1,
        "num_heads": 2,
    },
    "hift": {"base_channels": 64, "f0_cond_channels": 64},
    "campplus": {"growth_rate": 8, "init_channels": 32},
}

# The perceiver hard-codes a width of 1024, so the Llama variants keep it and lose depth instead.
TINY_T3: dict[Variant, dict[str, Any]] = {
    Variant.ENGLISH: {
        "max_text_tokens": 1024,
        "max_speech_tokens": 1536,
        "backbone": {"intermediate_size": 1024, "num_hidden_layers": 1},
    },
    Variant.MULTILINGUAL: {
        "max_text_tokens": 1024,
        "max_speech_tokens": 1536,
        "backbone": {"intermediate_size": 1024, "num_hidden_layers": 1},
    },
    # GPT-2's own token table (``tfmr.wte``) is in the files but unused: a small vocabulary
    # keeps it cheap. Nano is narrower and shallower than Turbo, as the real ones are.
    Variant.TURBO: {
        "backbone": {
            "hidden_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "vocab_size": 256,
        },
    },
    Variant.NANO: {
        "backbone": {
            "hidden_size": 128,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "vocab_size": 256,
        },
    },
}


def architecture(variant: Variant, size: str) -> dict[str, Any] | None:
    """The reduced architecture for ``size='tiny'``; ``None`` means upstream's real sizes."""
    if size == "full":
        return None
    if size != "tiny":
        raise ValueError(f"size must be 'tiny' or 'full', not {size!r}")
    return {"t3": TINY_T3[variant], "s3gen": TINY_S3GEN}


def write_checkpoint(variant: Variant, size: str, out_dir: Path, seed: int = 0) -> Path:
    """Write a complete random checkpoint into ``out_dir`` atomically and return it."""
    return write_atomically(out_dir, lambda staging: write_files(staging, variant, size, seed))


def write_atomically(out_dir: Path, write: Callable[[Path], None]) -> Path:
    """``write`` into a staging directory beside ``out_dir``, then swap it in."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    try:
        write(staging)
    except BaseException:
        _rmtree(staging)
        raise
    _replace_dir(staging, out_dir)
    return out_dir


def write_files(
    staging: Path, variant: Variant, size: str, seed: int, pack: str | None = None
) -> None:
    """Every file of the checkpoint into ``staging``. For a Single Language Pack (``pack``, its
    code) the published names: one T3 named for the language, the decoder as ``s3gen_v3.pt``
    without the two buffers the S3 tokenizer computes, as the packs publish it."""
    torch.manual_seed(seed)
    arch = architecture(variant, size)
    t3_spec = dict(arch["t3"]) if arch else {}
    vocab = _write_tokenizer(staging, variant)
    if variant.turbo_family and arch:
        t3_spec["text_tokens_dict_size"] = vocab
    files = FILES[variant]
    ve = build_voice_encoder().eval()
    _save(ve.state_dict(), staging / files.voice_encoder)
    # The whole T3, as upstream's from_local loads it (Turbo/Nano's unused wte included).
    parameters = count_parameters(ve)
    for t3_file in [pack_t3_file(pack)] if pack else _t3_files(variant):
        t3 = build_t3(variant, t3_spec or None).eval()
        _save(t3.state_dict(), staging / t3_file)
    parameters += count_parameters(t3)
    s3gen = build_s3gen(variant, arch["s3gen"] if arch else None).eval()
    s3gen_state = s3gen.state_dict()
    if pack:
        for key in DERIVED_BUFFERS:
            del s3gen_state[key]
    _save(s3gen_state, staging / (PACK_S3GEN[-1] if pack else files.s3gen))
    marker = {
        "random_weights": True,
        "variant": variant.value,
        "size": size,
        "seed": seed,
        "parameters": parameters + count_parameters(s3gen),
        "architecture": {"t3": t3_spec, "s3gen": arch["s3gen"]} if arch else None,
    }
    (staging / RANDOM_MARKER).write_text(json.dumps(marker, indent=2))
    _write_builtin_voice(staging, SINGLE_LANGUAGE_PACKS[pack] if pack else None)


def pack_t3_file(code: str) -> str:
    """The T3 file name of a pack: the language code, as the published ones read
    (``t3_zh_cmn``, ``t3_es_es``, ``t3_pt_br``); the loader finds it by pattern whatever it is."""
    return f"t3_{code.replace('-', '_')}.safetensors"


def _t3_files(variant: Variant) -> list[str]:
    """Multilingual gets every T3 upstream publishes (v2 and v3, each its own random draw), so
    one directory serves either ``t3_model``."""
    if variant is Variant.MULTILINGUAL:
        return list(MULTILINGUAL_T3_MODELS.values())
    return [FILES[variant].t3]


def _write_tokenizer(staging: Path, variant: Variant) -> int:
    """The variant's tokenizer files; returns the text vocabulary size."""
    if variant.turbo_family:
        return _write_turbo_tokenizer(staging)
    limit = 2454 if variant is Variant.MULTILINGUAL else 704
    languages = list(SUPPORTED_LANGUAGES) if variant is Variant.MULTILINGUAL else []
    tokenizer = _char_tokenizer(limit, languages)
    if variant is Variant.MULTILINGUAL:
        write_chinese_assets(staging, tokenizer)  # the Cangjie table and pkuseg model
    tokenizer.save(str(staging / FILES[variant].tokenizer[0]))
    return limit


def _save(state: dict[str, torch.Tensor], path: Path) -> None:
    state = {k: v.detach().clone().contiguous() for k, v in state.items()}
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)


def _char_tokenizer(vocab_limit: int, languages: list[str]) -> Tokenizer:
    """A character-level tokenizer (BPE without merges) that upstream's tokenizers accept."""
    chars = sorted(set(string.printable.strip()) | set("àâäçéèêëîïôöùûüÿñßæœ¿¡«»€£"))
    vocab: dict[str, int] = {}
    for token in SPECIAL_TOKENS + [f"[{code}]" for code in languages] + chars:
        vocab.setdefault(token, len(vocab))
    # Upstream's SOT/EOT text ids are fixed (255 and 0): keep [STOP] at 0 and the rest < limit.
    assert len(vocab) < vocab_limit
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tokenizer.add_special_tokens(SPECIAL_TOKENS + [f"[{code}]" for code in languages])
    return tokenizer


def _write_turbo_tokenizer(directory: Path) -> int:
    """A small GPT-2-style tokenizer that ``AutoTokenizer.from_pretrained`` loads."""
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set(string.printable))
    vocab = {"<|endoftext|>": 0, **{c: i + 1 for i, c in enumerate(chars)}}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<|endoftext|>"))
    fast = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>")
    fast.save_pretrained(str(directory))
    return len(fast)


def reference_clip(seconds: float = 8.0, sr: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """A synthetic, speech-like reference: a gliding harmonic tone with syllable-rate bursts."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 30 * np.sin(2 * math.pi * 0.7 * t) + 10 * np.sin(2 * math.pi * 3.1 * t)
    phase = 2 * math.pi * np.cumsum(f0) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * math.pi * 4.0 * t) ** 2
    clip = 0.2 * voice * envelope + 0.01 * rng.standard_normal(t.size)
    return clip.astype(np.float32)


def _write_builtin_voice(directory: Path, repo_id: str | None) -> None:
    """Compute ``conds.pt`` (the built-in voice) with the checkpoint's own models."""
    from .conditioning import compute_conditioning
    from .loading import load_model

    model = load_model(directory, device="cpu", builtin_voice=False, repo_id=repo_id)
    conds = compute_conditioning(model, reference_clip(), SAMPLE_RATE)
    conds.save(directory / FILES[model.variant].builtin_voice)


def _replace_dir(staging: Path, target: Path) -> None:
    """Swap the finished staging directory in, so a crash never leaves half a checkpoint."""
    if target.exists():
        old = target.with_name(target.name + ".old")
        os.replace(target, old)
        os.replace(staging, target)
        _rmtree(old)
    else:
        os.replace(staging, target)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
