# The Chatterbox streaming TTS server: the FastAPI master on $PORT (8000) and its worker processes.
# One image for RunPod pods, RunPod Serverless (load-balancing and queue endpoints) and plain Docker.
#
# Base: python:3.11-slim-bookworm, not a CUDA image. The torch 2.10.0 wheels pinned in
# requirements.lock are the CUDA 12.8 build and bring their CUDA libraries as nvidia-*-cu12
# packages, so a CUDA base image would only add gigabytes of a second, unused CUDA. What the host
# needs: an NVIDIA driver >= 570 (CUDA 12.8; on RunPod filter by CUDA versions 12.8 and newer)
# and, outside RunPod, the NVIDIA Container Toolkit (`docker run --gpus all`). GPUs from Volta
# (sm_70) up. Without a GPU the same image runs on the CPU. CUDA 13 hosts run this image too; an
# image with CUDA 13.0 libraries is built on top of it (DEPLOYMENT.md, "What the host needs").
FROM python:3.11-slim-bookworm

# make runs the same install as CI; setpriv (util-linux, already in the base) drops root.
RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 1000 --create-home --shell /usr/sbin/nologin tts

WORKDIR /app
ENV PYTHONUNBUFFERED=1

# Dependencies first, so that a code change does not reinstall them. These are the commands CI
# runs: uv, then `make install`, which syncs .venv to the pinned requirements.lock.
COPY requirements.lock pyproject.toml Makefile ./
RUN python -m pip install --no-cache-dir uv \
    && UV_NO_CACHE=1 make install

# Optional: bake one variant's weights into the image (no download at start, no volume needed
# for them): docker build --build-arg BAKE_MODEL=chatterbox-turbo . Before the code is copied, so
# a code change does not download them again.
ARG BAKE_MODEL=""
COPY common/__init__.py common/variants.py common/model_files.py common/pkuseg.py common/
COPY scripts/download_weights.py scripts/
RUN if [ -n "$BAKE_MODEL" ]; then \
        .venv/bin/python scripts/download_weights.py --variant "$BAKE_MODEL" /app/models; \
    fi

COPY . .

# Everything persistent lives on one volume, chosen by DATA_DIR: /workspace on RunPod pods (the
# default here), /runpod-volume on RunPod Serverless. Voices go to $DATA_DIR/voices, downloaded
# weights to $DATA_DIR/huggingface-cache (the layout of RunPod's model cache), unless VOICES_DIR,
# PRELOADED_VOICES_DIR or HF_HOME say otherwise. Baked weights, if any, are in /app/models.
ENV DATA_DIR=/workspace \
    MODEL_PATH=/app/models \
    MODEL_VARIANT=${BAKE_MODEL} \
    HOST=0.0.0.0 \
    PORT=8000

# Set API_KEY: without it the service refuses to listen on 0.0.0.0.
EXPOSE 8000
# Ready = every worker has loaded the model; loading (a first download included) can take minutes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=600s --retries=3 \
    CMD ["/app/.venv/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ready' % os.environ.get('PORT', '8000'), timeout=4)"]

# The entrypoint creates the volume's folders, hands them to user tts (uid 1000) and runs the
# command as that user: the service never runs as root, yet works on a volume that root owns (as
# RunPod's are). The command is what `make serve` runs, started directly so that SIGTERM reaches
# it: on `docker stop` the requests in flight finish (SHUTDOWN_TIMEOUT_SECONDS) before the exit.
ENTRYPOINT ["/app/scripts/docker-entrypoint.sh"]
CMD ["/app/.venv/bin/python", "-m", "app"]
