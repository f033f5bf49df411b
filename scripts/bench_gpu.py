"""The GPU sweep in one device call: streams x models x CUDA graphs, its results in ``--out``.

    python3 scripts/bench_gpu.py --wheels .whl --out $OUT          # on the GPU machine
    python scripts/bench_gpu.py --device cpu --checkpoint chatterbox=DIR --out DIR [...]

Runs without make and without a virtual environment: with ``--wheels DIR`` it first installs
the carried wheels into ``--site`` (pip, no index, no network) and puts them first on the path.
Everything it prints also goes to ``OUT/bench_gpu.log`` (through ``tee``, so a killed run keeps
its log), and ``OUT/bench_gpu.json`` is rewritten (a temporary file, then a rename) after every
level: a call cut off at its time limit brings back what it measured. At the end
``OUT/bench_gpu.md`` holds the table for docs/PERFORMANCE.md. The sweep itself is
:mod:`bench_gpu_sweep`; this module imports nothing heavy, so the wheels go in first.

A checkpoint directory that does not exist (or is empty) is first written with random weights
(``make_random_checkpoint.py``, size ``--write-size``, all in parallel); one that holds files is
used as it is, real weights too.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FULL_CHECKPOINTS = [
    "chatterbox=.cache/checkpoints/chatterbox-full",
    "chatterbox-turbo=.cache/checkpoints/chatterbox-turbo-full",
]
VARIANTS = ("chatterbox", "chatterbox-turbo", "chatterbox-multilingual", "chatterbox-nano")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", action="append", metavar="VARIANT=DIR",
        help="a model to sweep (repeat); written first if DIR has no files; default: full-size "
        "English and Turbo under .cache/checkpoints",
    )  # fmt: skip
    parser.add_argument("--write-size", choices=("full", "tiny"), default="full")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", help="T3's dtype (MODEL_DTYPE)")
    parser.add_argument("--s3gen-dtype", default="float32", help="S3Gen's dtype (S3GEN_DTYPE)")
    parser.add_argument("--streams", default="1,16,64", help="comma-separated levels")
    parser.add_argument("--tokens", type=int, default=150, help="fixed_token_count per stream")
    parser.add_argument("--count-tokens", type=int, default=40, help="in the counting pass")
    parser.add_argument("--graphs", default="on,off", help="CUDA graph settings to sweep")
    parser.add_argument("--budget-seconds", type=float, default=330.0)
    parser.add_argument("--out", type=Path, required=True, help="a folder (the device's $OUT)")
    parser.add_argument("--wheels", type=Path, help="install these wheels first (no network)")
    parser.add_argument("--site", type=Path, default=Path("/tmp/site"))
    args = parser.parse_args(argv)
    args.models = [_checkpoint(text) for text in args.checkpoint or FULL_CHECKPOINTS]
    args.levels = [int(n) for n in args.streams.split(",")]
    args.graph_settings = [_on_off(word) for word in args.graphs.split(",")]
    return args


def _checkpoint(text: str) -> tuple[str, Path]:
    variant, sep, directory = text.partition("=")
    if not sep or variant not in VARIANTS:
        raise SystemExit(f"--checkpoint {text!r}: give VARIANT=DIR, VARIANT one of "
                         f"{', '.join(VARIANTS)}")  # fmt: skip
    path = Path(directory)
    return variant, path if path.is_absolute() else REPO / path


def _on_off(word: str) -> bool:
    if word not in ("on", "off"):
        raise SystemExit(f"--graphs: 'on' or 'off', not {word!r}")
    return word == "on"


def tee_to(log: Path) -> None:
    """This process's stdout and stderr (the C level's too) also into ``log``, line by line,
    through a ``tee`` that outlives a killed run long enough to write what it was given."""
    tee = subprocess.Popen(["tee", "-a", str(log)], stdin=subprocess.PIPE)
    assert tee.stdin is not None
    for fd in (1, 2):
        os.dup2(tee.stdin.fileno(), fd)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]


def install_wheels(wheels: Path, site: Path) -> None:
    found = sorted(str(w) for w in wheels.glob("*.whl"))
    if not found:
        raise SystemExit(f"--wheels {wheels}: no wheels there (make gpu-wheels prepares them)")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
         "--no-cache-dir", "--upgrade", "--target", str(site), *found],
        check=True,
    )  # fmt: skip
    sys.path.insert(0, str(site))


def main(argv: list[str] | None = None, tee: bool = True) -> dict[str, Any]:
    """``tee=False``: the log is left to the caller (a test running it in its own process)."""
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if tee:
        tee_to(args.out / "bench_gpu.log")
    print(f"bench_gpu: {' '.join(sys.argv)}", flush=True)
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.wheels:
        install_wheels(args.wheels, args.site)
    for path in (REPO, REPO / "scripts"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    import bench_gpu_sweep  # after the wheels

    return bench_gpu_sweep.run(args)


if __name__ == "__main__":
    main()
