# The Chatterbox streaming TTS server: the FastAPI master on $PORT (8000) and its worker processes.
#
# No CUDA base image is needed: the torch 2.11 (CUDA 13.0) wheels pinned in requirements.lock bring
# their CUDA libraries as nvidia-* packages. The host needs an NVIDIA driver that supports CUDA 13.0
# and the NVIDIA Container Toolkit (`docker run --gpus all`); without a GPU the engine runs on the CPU.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
ENV PYTHONUNBUFFERED=1

# Dependencies first, so that a code change does not reinstall them. These are the commands CI runs:
# uv, then `make install`, which syncs .venv to the pinned requirements.lock.
COPY requirements.lock pyproject.toml Makefile ./
RUN python -m pip install --no-cache-dir uv \
    && UV_NO_CACHE=1 make install

COPY . .

# Weights: a checkpoint directory in the upstream layout under /data/models, else the Hugging Face
# cache under /data/hf-cache (downloaded on first use). Mount a volume at /data to keep them.
ENV HF_HOME=/data/hf-cache \
    MODEL_PATH=/data/models

# Voices (uploads and preloaded clips) live under /app/voices and /app/preloaded-voices: mount the
# persistent volume there. Set API_KEY: without it the service refuses to listen on 0.0.0.0.
EXPOSE 8000
# What `make serve` runs, started directly so that SIGTERM reaches it (make would not pass it on):
# on `docker stop` requests in flight finish (SHUTDOWN_TIMEOUT_SECONDS) before the exit.
CMD ["/app/.venv/bin/python", "-m", "app"]
