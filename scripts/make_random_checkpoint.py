"""Write a random-weight Chatterbox checkpoint that loads through MODEL_PATH like real weights.

    python scripts/make_random_checkpoint.py --variant chatterbox --size tiny OUT_DIR
    python scripts/make_random_checkpoint.py --pack zh-cmn --size tiny OUT_DIR

``tiny`` builds the real upstream classes at reduced sizes (fast on a CPU, for tests); ``full`` at
the real sizes (for GPU timing). Every variant (chatterbox, chatterbox-turbo, chatterbox-nano,
chatterbox-multilingual with both its v2 and v3 T3 files) gets exactly the files upstream's
from_local reads, in the real files' shape. The directory's random_weights.json marks it as random
weights. --pack writes a Single Language Pack as published: a directory per repository (the
pack's, and ResembleAI/chatterbox with what packs lack), pkuseg's model, and both repositories
in a stand-in Hugging Face cache (OUT_DIR/hf-home): serve it with HF_HOME=OUT_DIR/hf-home
PKUSEG_HOME=OUT_DIR/pkuseg MODEL_REPO_ID=<code>.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.variants import SINGLE_LANGUAGE_PACKS, Variant
from worker.engine.model.random_checkpoint import write_checkpoint
from worker.engine.model.random_pack import write_language_pack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=[v.value for v in Variant], default="chatterbox")
    parser.add_argument(
        "--pack", choices=list(SINGLE_LANGUAGE_PACKS), help="a Single Language Pack instead"
    )
    parser.add_argument("--size", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    start = time.perf_counter()
    if args.pack:
        pack = write_language_pack(args.pack, args.size, args.out_dir, seed=args.seed)
        what = f"{args.pack} pack ({', '.join(pack.repositories)}; HF_HOME={pack.hf_home})"
        out = pack.root
    else:
        out = write_checkpoint(Variant(args.variant), args.size, args.out_dir, seed=args.seed)
        what = f"{args.variant} checkpoint"
    print(f"wrote {args.size} random {what} to {out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
