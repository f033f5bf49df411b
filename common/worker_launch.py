"""How a worker process is started, as ``python -m worker ARGS`` or forked from the fork server.

Torch-free, so the master may use it: the module names here are only strings to the master. The
fork server (``app/pool/launcher.py``) imports ``PRELOAD`` once, and every worker it forks runs
:func:`run_forked`, which is ``python -m worker`` in a process that has torch, transformers and
chatterbox imported already.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import runpy
import sys
import threading

WORKER_MODULE = "worker"
PRELOAD = ["worker.preload"]  # imported by the fork server: never initialises CUDA

log = logging.getLogger(__name__)


def command(argv: list[str]) -> list[str]:
    """The command line of a worker started as a plain subprocess."""
    return [sys.executable, "-m", WORKER_MODULE, *argv]


def run_forked(env: dict[str, str], argv: list[str]) -> None:
    """In a child of the fork server: take the worker's own environment, then run the worker.

    The environment is replaced before anything reads it: CUDA reads ``CUDA_VISIBLE_DEVICES``
    when it initialises, which the preload never does.
    """
    os.environ.clear()
    os.environ.update(env)
    sys.argv = [WORKER_MODULE, *argv]
    threading.Thread(target=_exit_with_master, name="master-watch", daemon=True).start()
    runpy.run_module(WORKER_MODULE, run_name="__main__", alter_sys=True)


def _exit_with_master() -> None:
    """Exit when the master is gone.

    A forked worker's parent process is the fork server, which outlives a killed master while its
    children hold it open, so the worker's own parent-pid check cannot see the master die; the
    pipe multiprocessing keeps from the master can: it ends when the master does.
    """
    master = multiprocessing.parent_process()
    if master is None:
        return
    master.join()
    log.warning("the master process is gone; exiting")
    os._exit(1)
