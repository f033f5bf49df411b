"""What deployment rests on, checked without Docker: workflows, Dockerfile, RunPod Hub files.

The image cannot be built here (no Docker engine), so these tests hold the Dockerfile to the
promise that it installs exactly as CI does, and everything it copies or runs exists.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from common.settings import Settings
from common.variants import Variant
from tests.support.server import REPO

WORKFLOWS = REPO / ".github" / "workflows"
DOCKERFILE = (REPO / "Dockerfile").read_text()


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), " ".join(rest.split())))
    return found


def test_the_workflows_pass_actionlint() -> None:
    actionlint = Path(sys.executable).parent / "actionlint"
    result = subprocess.run(
        [str(actionlint), "-no-color", *sorted(map(str, WORKFLOWS.glob("*.yml")))],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_lint_and_the_test_command_of_the_readme() -> None:
    ci = (WORKFLOWS / "ci.yml").read_text()
    assert "run: bash .ci/run" in ci
    steps = (REPO / ".ci" / "run").read_text()
    assert "make lint" in steps and "make test" in steps
    assert "make test" in (REPO / "README.md").read_text()


def test_publish_workflow_pushes_latest_and_the_commit_to_docker_hub() -> None:
    workflow = (WORKFLOWS / "publish-docker.yml").read_text()
    assert re.search(r"push:\s*\n\s*branches: \[main\]", workflow)
    assert ":latest" in workflow and ":${{ github.sha }}" in workflow
    assert "vars.DOCKERHUB_USERNAME" in workflow and "secrets.DOCKERHUB_TOKEN" in workflow


def test_the_dockerfile_installs_with_the_commands_ci_uses() -> None:
    """One dependency list: the image runs `make install` (uv pip sync of requirements.lock),
    the target `make test` and `make lint` depend on, and installs nothing else with pip."""
    runs = [args for keyword, args in dockerfile_instructions() if keyword == "RUN"]
    installs = [r for r in runs if re.search(r"\bpip\b|\buv\b|make install", r)]
    assert installs == ["python -m pip install --no-cache-dir uv && UV_NO_CACHE=1 make install"]
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^test: install\b", makefile, re.M)
    assert re.search(r"^lint: install\b", makefile, re.M)
    assert "pip sync --python $(BIN)/python requirements.lock" in makefile
    copies = [args for keyword, args in dockerfile_instructions() if keyword == "COPY"]
    assert copies[0] == "requirements.lock pyproject.toml Makefile ./"


def test_everything_the_dockerfile_copies_or_starts_exists() -> None:
    instructions = dockerfile_instructions()
    for keyword, args in instructions:
        if keyword == "COPY" and args != ". .":
            for source in args.split()[:-1]:
                assert (REPO / source).exists(), f"COPY {source}: missing"
    entrypoint = REPO / "scripts" / "docker-entrypoint.sh"
    assert ("ENTRYPOINT", '["/app/scripts/docker-entrypoint.sh"]') in instructions
    assert os.access(entrypoint, os.X_OK), "the entrypoint must be executable"
    ignored = (REPO / ".dockerignore").read_text().split()
    assert not {"scripts", "scripts/", "app", "worker"} & set(ignored)


def test_the_image_runs_the_service_unprivileged_on_8000_with_a_healthcheck() -> None:
    instructions = dict(dockerfile_instructions())
    assert instructions["EXPOSE"] == "8000"
    assert instructions["CMD"] == '["/app/.venv/bin/python", "-m", "app"]'
    assert "/ready" in instructions["HEALTHCHECK"]
    assert "useradd --uid 1000" in DOCKERFILE
    script = (REPO / "scripts" / "docker-entrypoint.sh").read_text()
    assert 'exec setpriv --reuid="$RUN_AS"' in script and "RUN_AS=tts" in script
    assert "DATA_DIR=/workspace" in instructions["ENV"]
    assert "ARG" in instructions and "BAKE_MODEL" in instructions["ARG"]


def test_data_dir_puts_voices_and_weights_on_the_volume() -> None:
    settings = Settings(data_dir=Path("/runpod-volume"))
    assert settings.voices_dir == Path("/runpod-volume/voices")
    assert settings.hf_home == Path("/runpod-volume/huggingface-cache")
    explicit = Settings(data_dir=Path("/runpod-volume"), voices_dir=Path("/elsewhere"))
    assert explicit.voices_dir == Path("/elsewhere")


def test_runpod_hub_files_name_real_settings() -> None:
    hub = json.loads((REPO / ".runpod" / "hub.json").read_text())
    tests = json.loads((REPO / ".runpod" / "tests.json").read_text())
    known = {name.upper() for name in Settings.model_fields} | {"HF_TOKEN"}
    for entry in hub["config"]["env"]:
        assert entry["key"] in known, f"hub.json sets {entry['key']}, which nothing reads"
    fixed = {e["key"]: e["value"] for e in hub["config"]["env"] if "value" in e}
    Settings(service_mode=fixed["SERVICE_MODE"], data_dir=fixed["DATA_DIR"])  # valid values
    for preset in hub["config"]["presets"]:
        Settings(**{key.lower(): value for key, value in preset["defaults"].items()})
    assert tests["tests"] and all("text" in t["input"] for t in tests["tests"])


@pytest.mark.parametrize("variant", [v.value for v in Variant])
def test_the_weights_script_knows_every_variant(variant: str) -> None:
    result = subprocess.run(
        [sys.executable, "scripts/download_weights.py", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and variant in result.stdout


def test_env_example_documents_every_setting() -> None:
    example = (REPO / ".env.example").read_text()
    missing = [
        name.upper()
        for name in Settings.model_fields
        if not re.search(rf"^#? ?{name.upper()}=", example, re.M)
    ]
    assert not missing, f".env.example lacks {missing}"


def test_make_demo_serves_the_tiny_checkpoint_on_loopback_without_a_key() -> None:
    """What `make demo` would run (make -n prints the commands without running them)."""
    result = subprocess.run(["make", "-n", "demo"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    command = next(line for line in result.stdout.splitlines() if "-m app" in line)
    assert command.split()[:4] == [
        "HOST=127.0.0.1", "API_KEY=", "MODEL_PATH=.cache/checkpoints/chatterbox-tiny",
        "MODEL_VARIANT=",
    ]  # fmt: skip
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^demo: install \$\(TINY_CKPT\)/random_weights\.json$", makefile, re.M)
    assert "NOISE" in makefile.split("define DEMO_BANNER")[1].split("endef")[0]
    assert re.search(r"^serve: install\n\t\$\(BIN\)/python -m app$", makefile, re.M)


def test_the_image_needs_cuda_12_8_and_the_runpod_files_say_so() -> None:
    """torch 2.10.0's default build (CUDA 12.8 libraries, driver >= 570), not 2.11's CUDA 13.0
    (driver >= 580, which RunPod's common hosts lacked)."""
    lock = (REPO / "requirements.lock").read_text()
    assert re.search(r"^torch==2\.10\.0$", lock, re.M)
    assert re.search(r"^nvidia-cuda-runtime-cu12==12\.8\.", lock, re.M)
    assert "-cu13" not in lock
    hub = json.loads((REPO / ".runpod" / "hub.json").read_text())["config"]
    tests = json.loads((REPO / ".runpod" / "tests.json").read_text())["config"]
    assert hub["allowedCudaVersions"] == tests["allowedCudaVersions"]
    assert min(hub["allowedCudaVersions"], key=float) == "12.8"
    for text in (DOCKERFILE, (REPO / "DEPLOYMENT.md").read_text()):
        assert "driver >= 570" in text and "CUDA 12.8" in text
