"""Schemathesis against the real service: requests generated from our own ``/openapi.json``
(examples, boundary values, random and deliberately invalid data, sequences of calls), every
answer checked against the document: no 5xx, only documented statuses, documented content
types, bodies that match their schemas.

Bounded in time: at most ``MAX_EXAMPLES`` random cases per operation (plus the boundary cases
the coverage phase derives from the schema), one request at a time, on a service of its own
whose text limits are small and whose synthesis is capped at a few tokens (see
tests/support/fuzz_hooks.py): about a minute and a half on two CPU cores. The seed is fixed, so
a run is reproducible; ``st run`` with other seeds (or ``--max-examples``) explores further.

Not covered here, because the document cannot describe it: ``WS /tts/stream`` (OpenAPI has no
WebSockets; tests/service/test_websocket.py and test_hostile.py) and the console's static files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import API_KEY, REPO, Server
from tests.support.voices import clip_bytes

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
MAX_EXAMPLES = 20
SEED = 100041758814043855993835074549325338312
SYNTHESIS = (("GET", "/tts/generate"), ("POST", "/tts/generate"), ("POST", "/v1/audio/speech"))


@pytest.fixture(scope="module")
def fuzzed(english_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A service of its own: texts of at most 40 characters (each accepted one is spoken), and a
    preloaded voice for the examples in the document (anna.wav)."""
    workdir = tmp_path_factory.mktemp("fuzzed")
    service = Server(english_dir, workdir, workers_per_device=1, concurrent_requests_per_worker=2,
                     max_text_chars=40, openai_max_input_chars=40,
                     max_voice_upload_bytes=300_000)  # fmt: skip
    (service.preloaded_dir / "anna.wav").write_bytes(clip_bytes(workdir))
    with service.running(log=workdir / "service.log"):
        yield service


@pytest.mark.timeout(600)
def test_schemathesis_finds_no_failure(fuzzed: Server, tmp_path: Path) -> None:
    report, output = run_schemathesis(fuzzed, tmp_path)
    cases = report["test_cases"]
    figures = (
        f"{report['operations']['tested']} operations, {cases['generated']} cases generated, "
        f"{cases['with_failures']} with failures, {cases['errored']} errored, "
        f"{report['running_time']:.0f} s"
    )
    print(f"schemathesis: {figures}")
    assert report["exit_code"] == 0 and not report["failures"] and not report["errors"], output
    assert report["operations"]["tested"] == len(operations(fuzzed)) > 10
    answered = answers(fuzzed)
    for method, route in SYNTHESIS:  # the run got past validation and really synthesized
        assert answered.get((route, method, "200"), 0) > 0, f"no 200 for {method} {route}"


def run_schemathesis(service: Server, workdir: Path) -> tuple[dict[str, Any], str]:
    command = [
        str(Path(sys.executable).parent / "st"), "run", f"{service.url}/openapi.json",
        "--checks", ",".join(CHECKS), "--header", f"X-API-Key: {API_KEY}",
        "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--workers", "1",
        "--request-timeout", "60", "--generation-database", "none", "--no-color",
        "--report", "json", "--report-dir", str(workdir / "report"),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "SCHEMATHESIS_HOOKS": "tests.support.fuzz_hooks"}
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True,
                            timeout=540)  # fmt: skip
    output = (result.stdout + result.stderr)[-20000:]
    reports = list((workdir / "report").glob("*.json"))
    assert reports, output
    report: dict[str, Any] = json.loads(reports[0].read_text())
    return report, output


def operations(service: Server) -> list[str]:
    document = httpx.get(f"{service.url}/openapi.json").json()
    return [f"{method.upper()} {path}" for path, ops in document["paths"].items() for method in ops]


def answers(service: Server) -> dict[tuple[str, str, str], float]:
    """The service's own count of its answers: (route, method, status) -> requests."""
    text = httpx.get(f"{service.url}/metrics", headers=service.headers).text
    return {
        (sample.labels["route"], sample.labels["method"], sample.labels["status"]): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "tts_http_requests"
        for sample in family.samples
        if sample.name == "tts_http_requests_total"
    }
