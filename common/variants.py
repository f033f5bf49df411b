"""The Chatterbox variants and the files each needs (torch-free).

The file names are those of the upstream checkpoints on the Hugging Face Hub; a local
``MODEL_PATH`` directory uses the same layout.
"""

from __future__ import annotations

import shlex
from collections.abc import Collection
from dataclasses import dataclass, replace
from enum import StrEnum
from fnmatch import fnmatch


class Variant(StrEnum):
    """Which Chatterbox model a worker serves."""

    ENGLISH = "chatterbox"
    TURBO = "chatterbox-turbo"
    NANO = "chatterbox-nano"
    MULTILINGUAL = "chatterbox-multilingual"

    @property
    def turbo_family(self) -> bool:
        """Turbo's class upstream (``ChatterboxTurboTTS``): a GPT-2 T3 without CFG, exaggeration
        or min_p, the meanflow S3Gen, a loudness-normalised reference. Nano is a smaller Turbo."""
        return self in (Variant.TURBO, Variant.NANO)


# Chinese text for the multilingual model: the Hanzi -> Cangjie table upstream's tokenizer reads
# from the model repository (upstream always takes it from ResembleAI/chatterbox), and the pkuseg
# word segmenter, which spacy_pkuseg downloads from GitHub on first use unless it is on disk: a
# PKUSEG_HOME-style folder (``<home>/spacy_ontonotes/``) named ``pkuseg`` in the checkpoint
# directory, else spacy_pkuseg's own PKUSEG_HOME.
CANGJIE_TABLE = "Cangjie5_TC.json"
BASE_REPO_ID = "ResembleAI/chatterbox"  # English, multilingual, and what packs lack
CANGJIE_REPO_ID = BASE_REPO_ID
PKUSEG_DIR = "pkuseg"
PKUSEG_MODEL = "spacy_ontonotes"


@dataclass(frozen=True)
class VariantFiles:
    """Upstream checkpoint layout of one variant."""

    repo_id: str
    voice_encoder: str
    t3: str
    s3gen: str
    tokenizer: tuple[str, ...]
    builtin_voice: str = "conds.pt"
    # Fetched with the weights, needed for some languages only (checked when the model loads).
    assets: tuple[str, ...] = ()

    # Files fetched beside the tokenizer: Turbo's GPT-2 tokenizer is several files of its own.
    tokenizer_patterns: tuple[str, ...] = ()

    @property
    def required(self) -> tuple[str, ...]:
        return (self.voice_encoder, self.t3, self.s3gen, *self.tokenizer)


GPT2_TOKENIZER_PATTERNS = ("*.json", "*.txt", "*.model")  # what upstream fetches besides weights

FILES: dict[Variant, VariantFiles] = {
    Variant.ENGLISH: VariantFiles(
        repo_id="ResembleAI/chatterbox",
        voice_encoder="ve.safetensors",
        t3="t3_cfg.safetensors",
        s3gen="s3gen.safetensors",
        tokenizer=("tokenizer.json",),
    ),
    Variant.TURBO: VariantFiles(
        repo_id="ResembleAI/chatterbox-turbo",
        voice_encoder="ve.safetensors",
        t3="t3_turbo_v1.safetensors",
        s3gen="s3gen_meanflow.safetensors",
        tokenizer=("tokenizer_config.json",),  # GPT-2 tokenizer files, read by AutoTokenizer
        tokenizer_patterns=GPT2_TOKENIZER_PATTERNS,
    ),
    Variant.NANO: VariantFiles(
        repo_id="ResembleAI/chatterbox-nano",
        voice_encoder="ve.safetensors",
        t3="t3_nano_v1.safetensors",
        s3gen="s3gen_meanflow.safetensors",
        tokenizer=("tokenizer_config.json",),
        tokenizer_patterns=GPT2_TOKENIZER_PATTERNS,
    ),
    Variant.MULTILINGUAL: VariantFiles(
        repo_id="ResembleAI/chatterbox",
        voice_encoder="ve.pt",
        t3="t3_mtl23ls_v2.safetensors",
        s3gen="s3gen.pt",
        tokenizer=("grapheme_mtl_merged_expanded_v1.json",),
        assets=(CANGJIE_TABLE,),
    ),
}

# Upstream main's multilingual T3 checkpoints (``ChatterboxMultilingualTTS.from_pretrained(
# t3_model=...)``): a short name, or the .safetensors file name itself.
MULTILINGUAL_T3_MODELS: dict[str, str] = {
    "v2": "t3_mtl23ls_v2.safetensors",
    "v3": "t3_mtl23ls_v3.safetensors",
}
DEFAULT_MULTILINGUAL_T3_MODEL = "v3"  # upstream's README recommends v3; its code default is v2

# Upstream's Single Language Pack: multilingual finetunes, each a Hub repository of its own.
SINGLE_LANGUAGE_PACKS: dict[str, str] = {
    code: f"ResembleAI/Chatterbox-Multilingual-{code}"
    for code in ("zh-cmn", "es-mx-latam", "pt-br", "es-es", "pt-pt", "hi")
}


def multilingual_t3_file(t3_model: str | None) -> str:
    """The T3 file a ``t3_model`` names (upstream's ``_resolve_multilingual_t3_model``)."""
    name = t3_model or DEFAULT_MULTILINGUAL_T3_MODEL
    if name in MULTILINGUAL_T3_MODELS:
        return MULTILINGUAL_T3_MODELS[name]
    if name.removesuffix(".safetensors") in {
        f.removesuffix(".safetensors") for f in MULTILINGUAL_T3_MODELS.values()
    }:
        return name.removesuffix(".safetensors") + ".safetensors"
    if name.endswith(".safetensors") and "/" not in name:
        return name
    raise ValueError(
        f"unknown multilingual T3 model {name!r}: use one of "
        f"{', '.join(MULTILINGUAL_T3_MODELS)} or a .safetensors file name"
    )


# A pack's decoder, in order of preference: the packs publish one or both (the .pt lacks two
# buffers the S3 tokenizer computes, which loading fills in).
PACK_S3GEN = ("s3gen_v3.safetensors", "s3gen_v3.pt")
PACK_T3_PATTERN = "t3_*.safetensors"  # each pack holds one T3, named for its language
# Not a pack's own T3, should a directory hold them too.
OTHER_T3_FILES = frozenset({f.t3 for f in FILES.values()} | set(MULTILINGUAL_T3_MODELS.values()))


class Part(StrEnum):
    """The files a model reads, by what they are (messages name them so)."""

    VOICE_ENCODER = "voice encoder"
    T3 = "T3"
    S3GEN = "S3Gen decoder"
    TOKENIZER = "tokenizer"
    BUILTIN_VOICE = "built-in voice"
    CANGJIE_TABLE = "Cangjie table"
    MARKER = "random-weights marker"


@dataclass(frozen=True)
class ModelFile:
    """One file a model reads: the first of ``names`` that ``repo_id`` holds. A name with ``*``
    is a pattern, which must match one file only (``exclude`` aside); ``also`` are patterns of
    companion files fetched with it (Turbo's GPT-2 tokenizer files)."""

    part: Part
    repo_id: str
    names: tuple[str, ...]
    required: bool = True
    exclude: frozenset[str] = frozenset()
    also: tuple[str, ...] = ()

    def pick(self, present: Collection[str]) -> str | None:
        """The name this file has among ``present``; ``ValueError`` if a pattern is ambiguous."""
        for name in self.names:
            if "*" not in name:
                if name in present:
                    return name
                continue
            found = sorted(n for n in present if fnmatch(n, name) and n not in self.exclude)
            if len(found) > 1:
                raise ValueError(
                    f"several files could be the {self.part} of {self.repo_id}: "
                    f"{', '.join(found)}; name one with MULTILINGUAL_T3_MODEL"
                )
            if found:
                return found[0]
        return None

    @property
    def shown(self) -> str:
        """How a message names it, e.g. 's3gen_v3.safetensors or s3gen_v3.pt (S3Gen decoder)'."""
        return f"{' or '.join(self.names)} ({self.part})"


@dataclass(frozen=True)
class ModelChoice:
    """Which model a worker serves: a variant, the Hub repository holding it (a Single
    Language Pack, a fork) and, for multilingual, which T3 checkpoint (upstream's ``t3_model``).

    A Single Language Pack uses its own T3 (found by pattern) unless ``t3_model`` names a file:
    upstream's short names (v2, v3) name the base repository's T3 files, which a pack lacks."""

    variant: Variant
    repo_id: str | None = None
    t3_model: str | None = None

    @property
    def pack(self) -> str | None:
        """The Single Language Pack's code, if the repository is one (packs are multilingual)."""
        codes = {repo: code for code, repo in SINGLE_LANGUAGE_PACKS.items()}
        return codes.get(self.repo_id or "") if self.variant is Variant.MULTILINGUAL else None

    @property
    def files(self) -> VariantFiles:
        files = FILES[self.variant]
        if self.repo_id:
            files = replace(files, repo_id=self.repo_id)
        if self.variant is Variant.MULTILINGUAL:
            files = replace(files, t3=self._t3_name)
        return files

    @property
    def _t3_name(self) -> str:
        if self.pack and (self.t3_model or DEFAULT_MULTILINGUAL_T3_MODEL) in MULTILINGUAL_T3_MODELS:
            return PACK_T3_PATTERN
        return multilingual_t3_file(self.t3_model)

    @property
    def wanted(self) -> tuple[ModelFile, ...]:
        """Every file the model reads, and the repository each comes from: a pack's own T3,
        decoder and tokenizer; the voice encoder, built-in voice and Cangjie table of the base
        repository (the packs do not carry them)."""
        files = self.files
        own, base = files.repo_id, BASE_REPO_ID if self.pack else files.repo_id
        s3gen = PACK_S3GEN if self.pack else (files.s3gen,)
        others = OTHER_T3_FILES if self.pack else frozenset()
        wanted = [
            ModelFile(Part.T3, own, (files.t3,), exclude=others),
            ModelFile(Part.S3GEN, own, s3gen),
            ModelFile(Part.TOKENIZER, own, files.tokenizer, also=files.tokenizer_patterns),
            ModelFile(Part.MARKER, own, (RANDOM_MARKER,), required=False),
            ModelFile(Part.VOICE_ENCODER, base, (files.voice_encoder,)),
            ModelFile(Part.BUILTIN_VOICE, base, (files.builtin_voice,), required=False),
        ]
        if CANGJIE_TABLE in files.assets:  # upstream's tokenizer always takes it from the base
            cangjie = ModelFile(
                Part.CANGJIE_TABLE, CANGJIE_REPO_ID, (CANGJIE_TABLE,), required=False
            )
            wanted.append(cangjie)
        return tuple(wanted)

    @property
    def label(self) -> str:
        """What /system-status and /v1/models call it, e.g. 'chatterbox-multilingual v3'."""
        name = self.variant.value
        t3 = self.files.t3
        if self.variant is Variant.MULTILINGUAL and t3 != PACK_T3_PATTERN:
            name += " " + t3.removeprefix("t3_mtl23ls_").removesuffix(".safetensors")
        if self.repo_id and self.repo_id != FILES[self.variant].repo_id:
            name += f" ({self.repo_id})"
        return name

    def fetch_command(self, directory: str | None = None) -> str:
        """The command that fetches this model's files: into ``directory`` (a MODEL_PATH), else
        into the Hugging Face cache."""
        words = ["python scripts/download_weights.py"]
        if self.pack:
            words += ["--repo-id", self.pack]
        else:
            words += ["--variant", self.variant.value]
            if self.repo_id and self.repo_id != FILES[self.variant].repo_id:
                words += ["--repo-id", self.repo_id]
        if self.variant is Variant.MULTILINGUAL and self.t3_model not in (
            None,
            DEFAULT_MULTILINGUAL_T3_MODEL,
        ):
            words += ["--t3-model", str(self.t3_model)]
        return " ".join(words + ([shlex.quote(directory)] if directory else []))


# Languages of chatterbox-multilingual 0.1.7 (chatterbox.mtl_tts.SUPPORTED_LANGUAGES), copied
# here so that requests can be validated without importing torch.
SUPPORTED_LANGUAGES: dict[str, str] = {
    "ar": "Arabic", "da": "Danish", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "fi": "Finnish", "fr": "French", "he": "Hebrew", "hi": "Hindi",
    "it": "Italian", "ja": "Japanese", "ko": "Korean", "ms": "Malay", "nl": "Dutch",
    "no": "Norwegian", "pl": "Polish", "pt": "Portuguese", "ru": "Russian", "sv": "Swedish",
    "sw": "Swahili", "tr": "Turkish", "zh": "Chinese",
}  # fmt: skip

# S3Gen conditions on the first 10 s of a reference clip (T3 reads less of it).
REFERENCE_WINDOW_SECONDS = 10
# Turbo's reference must be longer than this (upstream asserts it); the others need less.
TURBO_MIN_REFERENCE_SECONDS = 5.0

# The marker file that a random-weight checkpoint carries (see scripts/make_random_checkpoint.py).
RANDOM_MARKER = "random_weights.json"
