"""The streaming Chatterbox engine.

Nothing here imports web or IPC code, so a CLI, a test or a worker process can drive it alike.
Import the submodules directly (``worker.engine.pipeline`` ...): this package's ``__init__`` stays
free of torch so that light modules such as ``worker.engine.variants`` import in milliseconds.
"""
