"""spacy_pkuseg's word segmentation model for Chinese: where it is, and fetching it.

The multilingual tokenizer segments Chinese into words with spacy_pkuseg, whose model
(``spacy_ontonotes``) is not in the Chatterbox repositories: spacy_pkuseg downloads it from
GitHub on first use into ``$PKUSEG_HOME/spacy_ontonotes``. Fetching it here, with the weights,
is what lets a multilingual server start offline. Torch-free: the Docker build runs it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .variants import PKUSEG_MODEL

log = logging.getLogger(__name__)

# spacy_pkuseg reads a model folder holding these two files.
PKUSEG_FILES = ("features.msgpack", "weights.npz")


def pkuseg_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in PKUSEG_FILES)


def fetch_pkuseg_model(home: Path) -> Path:
    """Download the model into ``home`` (a PKUSEG_HOME: ``home/spacy_ontonotes``), as spacy_pkuseg
    itself would, unless ``HF_HUB_OFFLINE`` forbids downloads; the model's folder."""
    from huggingface_hub import constants
    from spacy_pkuseg import config
    from spacy_pkuseg.download import download_model

    folder = home / PKUSEG_MODEL
    if pkuseg_complete(folder):
        return folder
    if constants.HF_HUB_OFFLINE:
        raise FileNotFoundError(f"{folder} is incomplete and HF_HUB_OFFLINE is set")
    url = config.model_urls[PKUSEG_MODEL]
    log.info("Downloading the pkuseg model %s into %s", url, home)
    download_model(url, str(home), config.model_hash[PKUSEG_MODEL])  # checks the SHA-256
    if not pkuseg_complete(folder):
        raise FileNotFoundError(f"{url} did not unpack {', '.join(PKUSEG_FILES)} into {folder}")
    return folder
