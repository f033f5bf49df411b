"""The Chatterbox variants and the files each needs (torch-free).

The file names are those of the upstream checkpoints on the Hugging Face Hub; a local
``MODEL_PATH`` directory uses the same layout.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


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
CANGJIE_REPO_ID = "ResembleAI/chatterbox"
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

    @property
    def required(self) -> tuple[str, ...]:
        return (self.voice_encoder, self.t3, self.s3gen, *self.tokenizer)

    @property
    def hub_patterns(self) -> list[str]:
        """What to fetch from ``repo_id``. Turbo's GPT-2 tokenizer is several files of its own."""
        if self.repo_id.endswith(("-turbo", "-nano")):
            return ["*.safetensors", "*.json", "*.txt", "*.pt", "*.model"]
        return [*self.required, self.builtin_voice, *self.assets]


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
    ),
    Variant.NANO: VariantFiles(
        repo_id="ResembleAI/chatterbox-nano",
        voice_encoder="ve.safetensors",
        t3="t3_nano_v1.safetensors",
        s3gen="s3gen_meanflow.safetensors",
        tokenizer=("tokenizer_config.json",),
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


@dataclass(frozen=True)
class ModelChoice:
    """Which model a worker serves: a variant, the Hub repository holding it (a Single
    Language Pack, a fork) and, for multilingual, which T3 checkpoint (upstream's ``t3_model``)."""

    variant: Variant
    repo_id: str | None = None
    t3_model: str | None = None

    @property
    def files(self) -> VariantFiles:
        files = FILES[self.variant]
        if self.repo_id:
            files = replace(files, repo_id=self.repo_id)
        if self.variant is Variant.MULTILINGUAL:
            files = replace(files, t3=multilingual_t3_file(self.t3_model))
        return files

    @property
    def label(self) -> str:
        """What /system-status and /v1/models call it, e.g. 'chatterbox-multilingual v3'."""
        name = self.variant.value
        if self.variant is Variant.MULTILINGUAL:
            name += " " + self.files.t3.removeprefix("t3_mtl23ls_").removesuffix(".safetensors")
        if self.repo_id and self.repo_id != FILES[self.variant].repo_id:
            name += f" ({self.repo_id})"
        return name


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
