"""Download every file a model needs, so that the server then starts offline (HF_HUB_OFFLINE=1).

Into DIRECTORY: the upstream layout ``MODEL_PATH`` expects (the Docker build runs this when
``--build-arg BAKE_MODEL=<variant>`` is given). Without DIRECTORY: into the Hugging Face cache
the server reads (``HF_HOME``, or ``DATA_DIR``'s; the settings of the environment and ``.env``).
chatterbox-multilingual (and each Single Language Pack) also needs, for Chinese, the Cangjie
table (``Cangjie5_TC.json``) and spacy_pkuseg's segmentation model, fetched beside the weights
(``DIRECTORY/pkuseg``; without DIRECTORY, into ``PKUSEG_HOME``).

    python scripts/download_weights.py --variant chatterbox /app/models
    python scripts/download_weights.py --variant chatterbox-multilingual --t3-model v3 \\
        --repo-id zh-cmn models/zh
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.pkuseg import fetch_pkuseg_model
from common.variants import (
    CANGJIE_REPO_ID,
    CANGJIE_TABLE,
    DEFAULT_MULTILINGUAL_T3_MODEL,
    PKUSEG_DIR,
    SINGLE_LANGUAGE_PACKS,
    ModelChoice,
    Variant,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", type=Variant, choices=list(Variant), required=True)
    parser.add_argument(
        "--repo-id",
        help="Hub repository (default: the variant's own); a Single Language Pack's code "
        f"({', '.join(SINGLE_LANGUAGE_PACKS)}) stands for its repository",
    )
    parser.add_argument(
        "--t3-model",
        default=DEFAULT_MULTILINGUAL_T3_MODEL,
        help="multilingual T3: v2, v3 or a t3_*.safetensors file (default %(default)s)",
    )
    parser.add_argument("directory", type=Path, nargs="?", help="default: the Hub cache")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.directory is None:
        from common.settings import Settings  # not in the Docker build's layer: it gives DIR

        settings = Settings()
        settings.export_environment()  # HF_HOME and PKUSEG_HOME, before the imports read them
    from huggingface_hub import hf_hub_download, snapshot_download

    repo = SINGLE_LANGUAGE_PACKS.get(args.repo_id, args.repo_id)
    choice = ModelChoice(args.variant, repo, args.t3_model)
    files = choice.files
    local = {"local_dir": args.directory} if args.directory else {}
    path = Path(snapshot_download(files.repo_id, allow_patterns=files.hub_patterns, **local))
    missing = [name for name in files.required if not (path / name).is_file()]
    if missing:
        print(f"{files.repo_id} lacks {', '.join(missing)}", file=sys.stderr)
        return 1
    if CANGJIE_TABLE in files.assets and not (path / CANGJIE_TABLE).is_file():
        hf_hub_download(CANGJIE_REPO_ID, CANGJIE_TABLE, **local)  # upstream's tokenizer's source
    if args.variant is Variant.MULTILINGUAL:
        fetch_pkuseg_model(_pkuseg_home(args.directory))
    print(f"{choice.label}: {files.repo_id} -> {path}")
    return 0


def _pkuseg_home(directory: Path | None) -> Path:
    if directory is not None:
        return directory / PKUSEG_DIR
    from spacy_pkuseg import config  # reads PKUSEG_HOME at import

    return Path(config.pkuseg_home)


if __name__ == "__main__":
    sys.exit(main())
