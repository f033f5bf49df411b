# Every target works from a fresh clone: `install` creates .venv (and fetches uv if missing)
# from the pinned requirements.lock, the one file every install uses (CI and Dockerfile too).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# uv from PATH, else bootstrapped into .cache/uv (a venv of its own: works where pip refuses
# --user installs, e.g. on an externally managed system Python).
UV := $(shell command -v uv 2>/dev/null || echo .cache/uv/bin/uv)
STAMP := $(VENV)/.installed
TINY_CKPT ?= .cache/checkpoints/chatterbox-tiny
# `install` also installs the Node clients the suite runs, except where there is no npm (serving
# needs no Node; the suite's Node tests then say what is missing) or no lock (the Docker image
# copies only requirements.lock).
NODE_CLIENTS := tests/clients/node
NODE_LOCK := $(wildcard $(NODE_CLIENTS)/package-lock.json)
NPM := $(shell command -v npm 2>/dev/null)
NODE_STAMP := $(if $(and $(NPM),$(NODE_LOCK)),$(NODE_CLIENTS)/node_modules/.installed)

.PHONY: install serve demo test lint lock bench bench-nano bench-service bench-agent-latency bench-formats bench-concurrency bench-vc soak bench-gpu gpu-wheels checkpoint clean

install: $(STAMP) $(NODE_STAMP)

$(UV):
	$(PYTHON) -m venv .cache/uv
	.cache/uv/bin/python -m pip install --quiet uv

$(STAMP): requirements.lock | $(UV)
	@test -x $(BIN)/python || $(UV) venv --python $(PYTHON) $(VENV)
	$(UV) pip sync --python $(BIN)/python requirements.lock
	@touch $@

# The Node clients the suite runs unmodified (tests/clients/node): `npm ci` from their lock, again
# only when it changes.
$(NODE_CLIENTS)/node_modules/.installed: $(NODE_CLIENTS)/package-lock.json $(NODE_CLIENTS)/package.json
	cd $(NODE_CLIENTS) && npm ci
	@touch $@

# Recompile the pins after editing pyproject.toml (overrides and exclusions in [tool.uv] apply).
lock: | $(UV)
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 --no-header -o requirements.lock

# The service: the master on HOST:PORT and its workers (settings from the environment and .env).
serve: install
	$(BIN)/python -m app

# Try the API without a GPU, weights or a key: the service on a tiny random-weight checkpoint,
# reachable from this machine only. Whatever .env says, no key and that checkpoint's variant.
define DEMO_BANNER
================================================================================
  DEMO: RANDOM WEIGHTS. The audio is NOISE, not speech: the model is a tiny
  random checkpoint ($(TINY_CKPT)). Every endpoint works; nothing is said.
  http://127.0.0.1:$(or $(PORT),8000)/ (console), no API key. For speech: make serve
================================================================================
endef
export DEMO_BANNER

demo: install $(TINY_CKPT)/random_weights.json
	@echo "$$DEMO_BANNER"
	HOST=127.0.0.1 API_KEY= MODEL_PATH=$(TINY_CKPT) MODEL_VARIANT= $(BIN)/python -m app

# The browser tests drive Chromium through ChromeDriver: Debian's packages, installed if missing.
CHROMEDRIVER := $(shell command -v chromedriver 2>/dev/null || echo /usr/bin/chromedriver)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(CHROMEDRIVER):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver

# Two test processes (pytest-xdist), each given whole files so that a file's service starts once:
# a test mostly waits on one service process, so one pytest process leaves a core idle.
TEST_PROCESSES ?= 2

test: install $(CHROMEDRIVER)
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --dist loadfile

lint: install
	$(BIN)/ruff check app worker common tests scripts
	$(BIN)/ruff format --check app worker common tests scripts
	$(BIN)/mypy app worker common

checkpoint: install $(TINY_CKPT)/random_weights.json

$(TINY_CKPT)/random_weights.json: | $(STAMP)
	$(BIN)/python scripts/make_random_checkpoint.py --variant chatterbox --size tiny $(TINY_CKPT)

bench: install $(TINY_CKPT)/random_weights.json
	$(BIN)/python scripts/bench.py --model-path $(TINY_CKPT) --out .cache/bench.json

# The same on upstream's CPU model: a full-size random Nano checkpoint (1.9 GB, written once in
# about a minute), against upstream's Turbo-class generate on the same weights.
NANO_CKPT ?= .cache/checkpoints/chatterbox-nano-full

bench-nano: install $(NANO_CKPT)/random_weights.json
	$(BIN)/python scripts/bench.py --model-path $(NANO_CKPT) --out .cache/bench_nano.json

$(NANO_CKPT)/random_weights.json: | $(STAMP)
	$(BIN)/python scripts/make_random_checkpoint.py --variant chatterbox-nano --size full \
		$(NANO_CKPT)

# The service end to end: HTTP time to first audio vs the engine's, slot release, 8 concurrent.
bench-service: install $(TINY_CKPT)/random_weights.json
	$(BIN)/python scripts/bench_service.py --model-path $(TINY_CKPT) --out .cache/bench_service.json

# Voice agents: a sentence's end to its first audio, ElevenLabs' WebSocket vs /tts/stream.
bench-agent-latency: install $(TINY_CKPT)/random_weights.json
	$(BIN)/python scripts/bench_agent_latency.py --model-path $(TINY_CKPT) \
		--out .cache/bench_agent_latency.json

# Output formats: bytes per second, encoder CPU, first-chunk delay (docs/API.md has the table).
bench-formats: install $(TINY_CKPT)/random_weights.json
	$(BIN)/python scripts/bench_formats.py --model-path $(TINY_CKPT) --out .cache/bench_formats.json

# Voice conversion: time to first audio and x real time for a 30 s source, alone and beside
# 4 TTS streams (docs/PERFORMANCE.md).
bench-vc: install $(TINY_CKPT)/random_weights.json
	$(BIN)/python scripts/bench_vc.py --model-path $(TINY_CKPT) --out .cache/bench_vc.json

# Concurrency: 1, 4, 8 and 16 streams at once through the service (one CPU worker); JSON out.
bench-concurrency: install $(TINY_CKPT)/random_weights.json
	$(BIN)/python scripts/bench_concurrency.py --model-path $(TINY_CKPT) --via http \
		--out .cache/bench_concurrency.json

# Soak: SOAK_MINUTES of mixed traffic on every protocol (barge-ins, drops, voice churn) through
# the service on the tiny checkpoint, sampling RSS, file descriptors and active requests; fails
# on a 5xx, a hang or, from 15 minutes, RSS growth after the warm-up (docs/PERFORMANCE.md#soak).
SOAK_MINUTES ?= 30

soak: install $(TINY_CKPT)/random_weights.json
	$(BIN)/python scripts/soak.py --model-path $(TINY_CKPT) --minutes $(SOAK_MINUTES) \
		--out .cache/soak.json

# The GPU sweep, on a GPU machine where there is no .venv: the image's python3 and torch, plus
# the wheels ../shared/tools/gpu-wheels prepared in .whl, which the script installs itself
# (docs/PERFORMANCE.md gives the device command, which needs no make). Full-size random English
# and Turbo checkpoints (written first, in parallel, where missing), T3 in bf16, 1, 16 and 64
# streams of 150 tokens, CUDA graphs on and off; what would not end within the budget is
# skipped and named. JSON and a log in $(GPU_BENCH_OUT) after every level, a table at the end.
GPU_PYTHON ?= python3
GPU_BENCH_OUT ?= .cache/bench_gpu
# The sweep's own defaults are the sweep (its --help); e.g. GPU_BENCH_ARGS="--streams 1,16".
GPU_BENCH_ARGS ?=

bench-gpu:
	$(GPU_PYTHON) scripts/bench_gpu.py $(if $(wildcard .whl/*.whl),--wheels .whl) \
		--out $(GPU_BENCH_OUT) $(GPU_BENCH_ARGS)

# Prepare those wheels here (they travel with the working tree, 64 MiB at most a call): the
# engine's own dependencies beyond the GPU image, with the pinned transformers and the
# tokenizers it accepts (the image's 0.23.2 fails transformers 5.2.0's import-time check), and
# typing-extensions (the carried pydantic-core needs its Sentinel, 4.14 or later). Then the
# tree and the wheels together are checked against the 64 MiB.
GPU_BENCH_WHEELS := annotated-types audioread cffi chatterbox-tts conformer \
	decorator deprecated diffusers importlib-metadata lazy-importer librosa omegaconf platformdirs \
	pooch pycparser pydantic pydantic-core pydantic-settings pyloudnorm python-dotenv \
	resemble-perth s3tokenizer soundfile soxr tokenizers transformers typing-extensions \
	typing-inspection
GPU_WHEELS_TOOL ?= ../shared/tools/gpu-wheels
CARRY_LIMIT := 67108864

gpu-wheels:
	@mkdir -p .cache
	grep -iE '^($(shell echo $(GPU_BENCH_WHEELS) | tr ' ' '|'))==' requirements.lock \
		> .cache/gpu-requirements.txt
	$(GPU_WHEELS_TOOL) -r .cache/gpu-requirements.txt --also transformers --also tokenizers \
		--also typing-extensions
	@tree=$$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null \
		| tail -1 | cut -f1); wheels=$$(du -sb .whl | cut -f1); total=$$((tree + wheels)); \
	echo "working tree $$tree + .whl $$wheels = $$total bytes of $(CARRY_LIMIT)"; \
	test $$total -lt $(CARRY_LIMIT) || { echo "over the device's 64 MiB carry limit" >&2; exit 1; }

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
