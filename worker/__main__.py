"""A worker process, as the master starts it: ``python -m worker --worker-id gpu0-w0 ...``.

Reads the same settings as the master (environment and ``.env``); the arguments say which
device it is pinned to and where the master's sockets are. The master pins a GPU worker with
``CUDA_VISIBLE_DEVICES``, so the device here is ``cuda:0`` or ``cpu``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from common.log_setup import configure_logging
from common.settings import Settings

from .memory import limit_arenas


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--generation", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--jobs", required=True, help="endpoint of this worker's job socket")
    parser.add_argument("--results", required=True)
    parser.add_argument("--control", required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format, args.worker_id)
    limit_arenas()  # before the worker starts threads of its own
    settings.export_environment()  # HF_HOME, before huggingface_hub is imported
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch

    from common.voices.library import VoiceLibrary

    from .capacity import choose_slots
    from .engine.pipeline import StreamingEngine
    from .engine_config import engine_config
    from .service import Endpoints, WorkerService, run_until_signal

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()  # read here: the model loads in another thread

    config = engine_config(settings, device=args.device)

    def load() -> StreamingEngine:
        model = config.load_model()
        slots = choose_slots(
            settings.concurrent_requests_per_worker, model, config.context, config.max_windows,
            share=settings.workers_per_device,
        )  # fmt: skip
        return config.engine(model, slots, threads=threads)

    service = WorkerService(
        worker_id=args.worker_id,
        generation=args.generation,
        endpoints=Endpoints(jobs=args.jobs, results=args.results, control=args.control),
        heartbeat_interval=settings.heartbeat_interval_seconds,
        device=args.device,
        library=VoiceLibrary(settings.voices_dir, settings.preloaded_voices_dir),
        voice_cache_size=settings.voice_cache_size,
        precache=settings.precache_voices,
    )
    return asyncio.run(run_until_signal(service, load))


if __name__ == "__main__":
    sys.exit(main())
