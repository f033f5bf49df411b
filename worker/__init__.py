"""The worker processes (``python -m worker``) and the streaming engine they host (``engine``).

A worker pulls jobs from the master over ZeroMQ (``service``, ``job``), keeps its voices'
conditioning ready (``voice_cache``) and streams PCM back. The engine knows nothing of ZeroMQ or
the web, so the command line (``synthesize``) and the tests drive it alike.
"""
