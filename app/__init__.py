"""The master process: FastAPI (auth, voices, HTTP and WebSocket streaming, OpenAI's API, the
console, metrics) and the pool of worker processes it feeds over ZeroMQ.

It never imports torch or ``worker``: what it shares with the workers is in ``common``. So it
starts in a second and stays responsive while the workers load models.
"""
