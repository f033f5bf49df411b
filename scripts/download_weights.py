"""Download every file a model needs, so that the server then starts offline (HF_HUB_OFFLINE=1).

Into DIRECTORY: the upstream layout ``MODEL_PATH`` expects (the Docker build runs this when
``--build-arg BAKE_MODEL=<variant>`` is given). Without DIRECTORY: into the Hugging Face cache
the server reads (``HF_HOME``, or ``DATA_DIR``'s; the settings of the environment and ``.env``).
Only the files the model reads are fetched, never a whole repository. A Single Language Pack
(``--repo-id zh-cmn`` ...) takes its T3, decoder and tokenizer from its own repository and the
voice encoder, the built-in voice and the Cangjie table from ResembleAI/chatterbox: both go into
DIRECTORY side by side (or into the cache, each under its repository).
chatterbox-multilingual (and each pack) also needs, for Chinese, spacy_pkuseg's segmentation
model, fetched beside the weights (``DIRECTORY/pkuseg``; without DIRECTORY, into ``PKUSEG_HOME``).

    python scripts/download_weights.py --variant chatterbox /app/models
    python scripts/download_weights.py --variant chatterbox-multilingual --t3-model v2 models/mtl
    python scripts/download_weights.py --repo-id zh-cmn models/zh
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.model_files import by_repository, fetch, pick_files
from common.pkuseg import fetch_pkuseg_model
from common.variants import PKUSEG_DIR, SINGLE_LANGUAGE_PACKS, ModelChoice, Variant


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variant",
        type=Variant,
        choices=list(Variant),
        help="the model (a Single Language Pack implies chatterbox-multilingual)",
    )
    parser.add_argument(
        "--repo-id",
        help="Hub repository (default: the variant's own); a Single Language Pack's code "
        f"({', '.join(SINGLE_LANGUAGE_PACKS)}) stands for its repository",
    )
    parser.add_argument(
        "--t3-model",
        help="multilingual T3: v2, v3 (the default) or a t3_*.safetensors file; a pack's own T3 "
        "unless a file is named",
    )
    parser.add_argument("directory", type=Path, nargs="?", help="default: the Hub cache")
    args = parser.parse_args(argv)
    args.repo_id = SINGLE_LANGUAGE_PACKS.get(args.repo_id, args.repo_id)
    if args.repo_id in SINGLE_LANGUAGE_PACKS.values():
        if args.variant not in (None, Variant.MULTILINGUAL):
            parser.error(f"{args.repo_id} is a Single Language Pack: chatterbox-multilingual")
        args.variant = Variant.MULTILINGUAL
    if args.variant is None:
        parser.error("--variant is required (unless --repo-id names a Single Language Pack)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.directory is None:
        from common.settings import Settings  # not in the Docker build's layer: it gives DIR

        settings = Settings()
        settings.export_environment()  # HF_HOME and PKUSEG_HOME, before the imports read them
    choice = ModelChoice(args.variant, args.repo_id, args.t3_model)
    for repo_id, files in by_repository(choice.wanted).items():
        try:
            found = pick_files(files, fetch(repo_id, files, args.directory))
        except Exception as error:  # the Hub unreachable, the repository unknown ...
            print(f"fetching from {repo_id} failed: {error}", file=sys.stderr)
            return 1
        missing = [f.shown for f in files if f.required and f.part not in found]
        if missing:
            print(f"{repo_id} lacks {', '.join(missing)}", file=sys.stderr)
            return 1
        print(f"{repo_id}: {', '.join(p.name for p in found.values())}")
    if args.variant is Variant.MULTILINGUAL:
        fetch_pkuseg_model(_pkuseg_home(args.directory))
    print(f"{choice.label}: ready in {args.directory or 'the Hugging Face cache'}")
    return 0


def _pkuseg_home(directory: Path | None) -> Path:
    if directory is not None:
        return directory / PKUSEG_DIR
    from spacy_pkuseg import config  # reads PKUSEG_HOME at import

    return Path(config.pkuseg_home)


if __name__ == "__main__":
    sys.exit(main())
