"""The streaming Chatterbox engine.

Its rooms, by stage (who may import whom is checked by ``tests/common/test_layout.py``):

- ``text/``: cleaning, chunking, punctuation, budgets, timings; plain Python, never torch.
- ``model/``: loading a checkpoint, voice conditioning, random-weight checkpoints.
- ``t3/``: text to speech tokens, every request in one batch.
- ``s3gen/``: speech tokens to audio, windows of many requests decoded together.
- here: the pipeline joining a request's two stages, the model loop both batchers run on, the
  items the stages pass, a request's state and stats, its chunk timer, the engine's errors.

Nothing here imports web or IPC code, so a CLI, a test or a worker process can drive it alike.
Import the submodules directly (``worker.engine.pipeline`` ...): this package's ``__init__`` stays
free of torch so that light modules such as ``common.variants`` import in milliseconds.
"""

import warnings

# Upstream's import chain warns about its own dependencies on every start; none of it is
# actionable for a user of this server, and it buries real messages.
for _message in (
    r"pkg_resources is deprecated",
    r".*LoRACompatibleLinear.*",
    r".*torch\.backends\.cuda\.sdp_kernel\(\).*",
):
    warnings.filterwarnings("ignore", message=_message)
