"""The streaming Chatterbox engine.

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
