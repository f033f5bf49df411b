"""The multilingual tokenizer, with Chinese text turned into Cangjie codes from local files only.

Upstream's ``MTLTokenizer`` builds a ``ChineseCangjieConverter`` that downloads the Cangjie table
from the Hub and lets spacy_pkuseg download its segmentation model from GitHub; when either
fails it logs a warning and feeds raw Hanzi to T3, which then speaks Chinese badly or not at all.
Here both assets are found when the model loads (see ``common.variants``: the table in the
checkpoint directory or the Hub cache of upstream's repository, the segmenter in the
checkpoint's ``pkuseg`` folder or spacy_pkuseg's PKUSEG_HOME). One that is missing is fetched
there and then, as missing weights are, unless ``HF_HUB_OFFLINE`` is set; if that is not
possible the start-up stops naming the file and the command that fetches it. Nothing is fetched
later, and the conversion itself is upstream's, token for token.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from unicodedata import category

from common.pkuseg import PKUSEG_FILES, fetch_pkuseg_model, pkuseg_complete
from common.variants import (
    CANGJIE_REPO_ID,
    CANGJIE_TABLE,
    PKUSEG_DIR,
    PKUSEG_MODEL,
    SUPPORTED_LANGUAGES,
    Variant,
)

from ..errors import InvalidCheckpointError, InvalidRequestError, ModelNotFoundError

log = logging.getLogger(__name__)

FETCH = (
    f"python scripts/download_weights.py --variant {Variant.MULTILINGUAL.value} DIR "
    "(add --repo-id for a Single Language Pack), then MODEL_PATH=DIR"
)


@dataclass(frozen=True)
class ChineseAssets:
    cangjie_table: Path
    pkuseg_model: Path  # a folder with PKUSEG_FILES


def find_assets(checkpoint: Path) -> ChineseAssets:
    """Where this checkpoint's Chinese assets are; a missing one raises naming it."""
    return ChineseAssets(_find_table(checkpoint), _find_segmenter(checkpoint))


def _find_table(checkpoint: Path) -> Path:
    local = checkpoint / CANGJIE_TABLE
    if local.is_file():
        return local
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(CANGJIE_REPO_ID, CANGJIE_TABLE))  # the cache when offline
    except Exception as error:
        raise ModelNotFoundError(
            f"Chinese text needs the Cangjie table {CANGJIE_TABLE}: it is neither in {checkpoint} "
            f"nor in the Hugging Face cache of {CANGJIE_REPO_ID}, and downloading it failed "
            f"({_first_line(error)}). Fetch it with: {FETCH}."
        ) from None


def _find_segmenter(checkpoint: Path) -> Path:
    from spacy_pkuseg import config

    home = Path(config.pkuseg_home)
    candidates = [checkpoint / PKUSEG_DIR / PKUSEG_MODEL, home / PKUSEG_MODEL]
    for folder in candidates:
        if pkuseg_complete(folder):
            return folder
    try:
        return fetch_pkuseg_model(home)
    except Exception as error:
        raise ModelNotFoundError(
            f"Chinese text needs the pkuseg segmentation model {PKUSEG_MODEL} "
            f"({' and '.join(PKUSEG_FILES)}), found in neither "
            f"{' nor '.join(map(str, candidates))} (PKUSEG_HOME), and downloading it failed "
            f"({_first_line(error)}). Fetch it with: {FETCH}."
        ) from None


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def read_cangjie_table(path: Path) -> dict[str, str]:
    """Each glyph's tokens, as upstream's converter spells them: ``[cj_x]`` per character of its
    code (with the glyph's index among those sharing the code, if not first), then ``[cj_.]``."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
        pairs = [entry.split("\t")[:2] for entry in entries]
        codes = {glyph: code for glyph, code in pairs}  # a later entry wins, as upstream's
    except (OSError, ValueError, TypeError, AttributeError) as error:
        raise InvalidCheckpointError(
            f"{path} is not a Cangjie table (a JSON list of 'glyph<TAB>code' strings): "
            f"{type(error).__name__}: {error}"
        ) from None
    sharing: dict[str, list[str]] = {}
    for glyph, code in pairs:
        sharing.setdefault(code, []).append(glyph)
    spelled = {}
    for glyph, code in codes.items():
        index = sharing[code].index(glyph)
        full = code + (str(index) if index > 0 else "")
        spelled[glyph] = "".join(f"[cj_{c}]" for c in full) + "[cj_.]"
    return spelled


def load_segmenter(model_dir: Path) -> Callable[[str], list[str]]:
    """spacy_pkuseg's segmenter with the model in ``model_dir`` (upstream's defaults otherwise)."""
    from spacy_pkuseg import pkuseg

    try:
        segmenter = pkuseg(model_name=str(model_dir))
    except Exception as error:
        raise InvalidCheckpointError(
            f"The pkuseg model in {model_dir} does not load ({type(error).__name__}: {error}). "
            f"Fetch it again with: {FETCH}."
        ) from None
    cut: Callable[[str], list[str]] = segmenter.cut
    return cut


class CangjieConverter:
    """Upstream's ``ChineseCangjieConverter.__call__``: words separated by spaces, each Hanzi
    (Unicode category Lo) in the table replaced by its Cangjie tokens, anything else kept."""

    def __init__(self, spelled: dict[str, str], segment: Callable[[str], list[str]]) -> None:
        self.spelled = spelled
        self.segment = segment

    def __call__(self, text: str) -> str:
        spaced = " ".join(self.segment(text))
        return "".join(self.spelled.get(c, c) if category(c) == "Lo" else c for c in spaced)


def load_converter(checkpoint: Path) -> CangjieConverter:
    assets = find_assets(checkpoint)
    log.info("Chinese: Cangjie table %s, pkuseg %s", assets.cangjie_table, assets.pkuseg_model)
    return CangjieConverter(
        read_cangjie_table(assets.cangjie_table), load_segmenter(assets.pkuseg_model)
    )


def multilingual_tokenizer(vocab: Path) -> Callable[[str, str | None], list[int]]:
    """Upstream's ``MTLTokenizer`` (its own ``encode``), its Chinese converter built here.

    Assembled as its ``__init__`` does, except for the converter, whose ``__init__`` would
    download; ours is built from local files now, so a missing asset fails the start-up.
    """
    from chatterbox.models.tokenizers.tokenizer import MTLTokenizer
    from tokenizers import Tokenizer

    tokenizer: MTLTokenizer = MTLTokenizer.__new__(MTLTokenizer)
    tokenizer.tokenizer = Tokenizer.from_file(str(vocab))
    tokenizer.check_vocabset_sot_eot()
    tokenizer.cangjie_converter = load_converter(vocab.parent)
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
