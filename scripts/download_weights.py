"""Download one variant's weights from the Hugging Face Hub into a directory.

The Docker build runs it when ``--build-arg BAKE_MODEL=<variant>`` is given, so the image starts
without a download (``MODEL_PATH`` points at the directory). It fetches exactly the files the
server loads, in the upstream layout ``MODEL_PATH`` expects.

    python scripts/download_weights.py --variant chatterbox /app/models
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.variants import FILES, Variant


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", type=Variant, choices=list(Variant), required=True)
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    from huggingface_hub import snapshot_download

    files = FILES[args.variant]
    args.directory.mkdir(parents=True, exist_ok=True)
    snapshot_download(files.repo_id, allow_patterns=files.hub_patterns, local_dir=args.directory)
    missing = [name for name in files.required if not (args.directory / name).is_file()]
    if missing:
        print(f"{files.repo_id} lacks {', '.join(missing)}", file=sys.stderr)
        return 1
    print(f"{args.variant.value}: {files.repo_id} -> {args.directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
