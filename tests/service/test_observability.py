"""``/metrics`` (parsed with prometheus-client's own parser), request ids in every log line, JSON
logs, no key in any log line, and RunPod's PORT_HEALTH: through the real service."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.support.server import API_KEY, Server, free_port


def scrape(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{server.url}/metrics", headers=server.headers, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: list[Sample] = [
        sample
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples}


def value(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:  # fmt: skip
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_a_request_and_its_timings(server: Server) -> None:
    server.wait_idle()
    route = {"route": "/tts/generate", "method": "POST", "status": "200"}
    before = scrape(server)
    body = {"text": "Count me.", "fixed_token_count": 25, "format": "raw_pcm"}
    response = httpx.post(f"{server.url}/tts/generate", json=body, headers=server.headers,
                          timeout=60)  # fmt: skip
    assert response.status_code == 200
    server.wait_idle()
    after = scrape(server)
    assert value(after, "tts_http_requests_total", **route) == (
        value(before, "tts_http_requests_total", **route) + 1
    )
    for histogram in ("tts_time_to_first_audio_seconds", "tts_real_time_factor"):
        count = f"{histogram}_count"
        assert value(after, count) == value(before, count) + 1, histogram
    assert value(after, "tts_audio_seconds_total") - value(before, "tts_audio_seconds_total") == (
        pytest.approx(1.0, abs=0.01)
    )
    assert value(after, "tts_synthesis_requests_total", outcome="done") == (
        value(before, "tts_synthesis_requests_total", outcome="done") + 1
    )


def test_metrics_show_the_pool_and_each_worker(server: Server) -> None:
    server.wait_idle()
    metrics = scrape(server)
    workers = [w["worker_id"] for w in server.status()["workers"]]
    assert len(workers) == 2
    for worker in workers:
        assert value(metrics, "tts_worker_state", worker_id=worker, state="ready") == 1
        assert value(metrics, "tts_worker_state", worker_id=worker, state="loading") == 0
        assert ("tts_worker_active_requests", (("worker_id", worker),)) in metrics
    assert value(metrics, "tts_capacity") == 8
    assert ("tts_queue_depth", ()) in metrics and ("tts_active_streams", ()) in metrics


def test_metrics_route_labels_are_templates_and_need_the_key(server: Server) -> None:
    httpx.get(f"{server.url}/voices/no-such-voice", headers=server.headers, timeout=10)
    httpx.get(f"{server.url}/console/console.js", timeout=10)
    httpx.get(f"{server.url}/no/such/path", timeout=10)
    metrics = scrape(server)
    labels = {"route": "/voices/{voice_id}", "method": "GET", "status": "404"}
    assert value(metrics, "tts_http_requests_total", **labels) >= 1
    console = {"route": "/console", "method": "GET", "status": "200"}
    assert value(metrics, "tts_http_requests_total", **console) >= 1
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    assert value(metrics, "tts_http_requests_total", **unmatched) >= 1
    assert not any("no-such" in str(key) for key in metrics)
    assert httpx.get(f"{server.url}/metrics", timeout=10).status_code == 401


@pytest.fixture(scope="module")
def json_server(english_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One worker, JSON logs to a file, and a health port of its own."""
    workdir = tmp_path_factory.mktemp("json-logs")
    service = Server(english_dir, workdir, log_format="json", port_health=free_port())
    with service.running(log=workdir / "service.log"):
        yield service


def test_every_log_line_is_json_and_names_the_request(json_server: Server) -> None:
    body = {"text": "Trace me.", "fixed_token_count": 15, "format": "raw_pcm"}
    response = httpx.post(f"{json_server.url}/tts/generate", json=body,
                          headers=json_server.headers, timeout=60)  # fmt: skip
    assert response.status_code == 200
    request_id = response.headers["X-Request-Id"]
    json_server.wait_idle()
    log = json_server.workdir / "service.log"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert all({"time", "level", "process", "request_id", "message"} <= set(r) for r in lines)
    mine = [r for r in lines if r["request_id"] == request_id]
    processes = {r["process"] for r in mine}
    assert "master" in processes, mine
    assert any(p.startswith("cpu-w") for p in processes), "no worker line carries the id"
    assert any("POST /tts/generate" in r["message"] for r in mine), "access log lacks the id"


async def test_no_log_line_holds_a_key(json_server: Server) -> None:
    """Keys in query strings (ours, ElevenLabs' names), headers and refused attempts, over HTTP
    and WebSockets: the whole log, master and worker, holds none of them."""
    wrong = "wrong-key-4e1d"  # refused, so uvicorn logs its request line with a 401/403
    url = json_server.url
    with httpx.Client(timeout=60) as http:
        speech: dict[str, str | int] = {
            "text": "Keys.",
            "fixed_token_count": 5,
            "format": "raw_pcm",
        }
        assert http.get(f"{url}/tts/generate", params={**speech, "api_key": API_KEY}).is_success
        assert http.get(f"{url}/health?api_key={wrong}&xi-api-key={wrong}").is_success
        assert http.get(f"{url}/system-status?token={wrong}&key={wrong}").status_code == 401
        assert http.get(f"{url}/system-status?xi_api_key={wrong}&Authorization=Bearer%20{wrong}",
                        headers={"xi-api-key": wrong}).status_code == 401  # fmt: skip
        assert http.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {API_KEY}"})
        assert http.get(f"{url}/v1/models?api_key={wrong}").status_code == 401
    async with websockets.connect(f"{json_server.ws_url}?api_key={API_KEY}") as ws:
        await ws.send(json.dumps({"text": "Keys.", "fixed_token_count": 5}))
        while not isinstance(message := await ws.recv(), str) or '"done"' not in message:
            pass
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(f"{json_server.ws_url}?api_key={wrong}"):
            pass
    json_server.wait_idle()
    log = (json_server.workdir / "service.log").read_text()
    assert "WebSocket /tts/stream?api_key=***" in log  # the lines were written, redacted
    assert "/system-status?token=***&key=***" in log
    assert API_KEY not in log and wrong not in log


def test_port_health_answers_ping(json_server: Server) -> None:
    port = json_server.env["PORT_HEALTH"]
    response = httpx.get(f"http://127.0.0.1:{port}/ping", timeout=10)
    assert response.status_code == 200 and response.json() == {"status": "healthy"}
