"""What the fork server imports once for every worker it forks (``common/worker_launch.py``):
torch, transformers, chatterbox and the worker's own modules, which take a worker ~10-25 s to
import; a forked worker finds them imported and only loads its model.

Importing must not initialise CUDA, nor ask how many GPUs there are: each worker sets its own
``CUDA_VISIBLE_DEVICES`` only after the fork, a CUDA driver initialised before a fork is unusable
after it, and torch's runtime device count (``cudaGetDeviceCount``) both initialises the driver
and marks every later fork as bad ("Cannot re-initialize CUDA in forked subprocess"). Yet
transformers asks ``torch.cuda.is_available()`` while it imports. So during the imports torch is
told to answer "no CUDA" without asking, and transformers' cached answer is cleared afterwards:
each worker asks for itself, with its own GPU. (``PYTORCH_NVML_BASED_CUDA_CHECK=1`` would not
do: torch falls back to the runtime when NVML cannot answer, e.g. for MIG UUIDs.)
``tests/service/test_launcher.py`` checks that nothing asks CUDA.

Anything read from the environment at import time is read with the master's environment (e.g.
``HF_HOME``, which the master exports before it starts the fork server).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def _cuda_unasked() -> Iterator[None]:
    """``torch.cuda`` answers "no CUDA" without asking the driver, inside the block only."""
    asked = torch.cuda.is_available, torch.cuda.device_count
    torch.cuda.is_available, torch.cuda.device_count = (lambda: False), (lambda: 0)
    try:
        yield
    finally:
        torch.cuda.is_available, torch.cuda.device_count = asked
        from transformers.utils import import_utils

        import_utils.is_torch_cuda_available.cache_clear()


with _cuda_unasked():
    from . import capacity, service  # noqa: F401
    from .engine import pipeline  # noqa: F401
    from .engine.model import loading  # noqa: F401
