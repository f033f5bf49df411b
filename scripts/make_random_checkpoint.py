"""Write a random-weight Chatterbox checkpoint that loads through MODEL_PATH like real weights.

    python scripts/make_random_checkpoint.py --variant chatterbox --size tiny OUT_DIR

``tiny`` builds the real upstream classes at reduced sizes (fast on a CPU, for tests); ``full`` at
the real sizes (for GPU timing). Every variant (chatterbox, chatterbox-turbo, chatterbox-nano,
chatterbox-multilingual with both its v2 and v3 T3 files) gets exactly the files upstream's
from_local reads, in the real files' shape. The directory's random_weights.json marks it as random
weights.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.variants import Variant
from worker.engine.model.random_checkpoint import write_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=[v.value for v in Variant], default="chatterbox")
    parser.add_argument("--size", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    start = time.perf_counter()
    out = write_checkpoint(Variant(args.variant), args.size, args.out_dir, seed=args.seed)
    print(
        f"wrote {args.size} random {args.variant} checkpoint to {out} "
        f"in {time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    main()
