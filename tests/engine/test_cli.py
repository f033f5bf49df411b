"""The command-line tools, run as a user runs them: in their own processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

from common.variants import Variant
from tests.support.checkpoints import Checkpoints

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, timeout: int = 240, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "PYTHONPATH": str(ROOT)}
    env.update(extra_env)
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_synthesize_streams_to_a_wav_and_reports_json(english_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "hello.wav"
    result = run(
        "-m", "worker.synthesize", "--text", "Hello there. How are you?",
        "--model-path", str(english_dir), "--out", str(out), "--json", "--seed", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"ttfa_ms", "total_ms", "audio_s", "chunks", "model", "weights"} <= report.keys()
    assert report["weights"] == "random weights" and report["model"] == "chatterbox"
    assert 0 < report["ttfa_ms"] <= report["total_ms"]
    with wave.open(str(out)) as wav:
        assert wav.getframerate() == 24000 and wav.getnchannels() == 1
        assert abs(wav.getnframes() / 24000 - report["audio_s"]) < 0.01


def test_bad_input_is_one_line_without_a_traceback(english_dir: Path, tmp_path: Path) -> None:
    result = run(
        "-m", "worker.synthesize", "--text", "   ", "--model-path", str(english_dir),
        "--out", str(tmp_path / "x.wav"),
    )  # fmt: skip
    assert result.returncode == 2
    assert "text is empty" in result.stderr and "Traceback" not in result.stderr


def test_missing_weights_offline_say_what_to_do(tmp_path: Path) -> None:
    result = run(
        "-m", "worker.synthesize", "--text", "Hi.", "--model-path", str(tmp_path / "none"),
        "--out", str(tmp_path / "x.wav"),
    )  # fmt: skip
    assert result.returncode == 1
    message = result.stderr
    assert "Cannot load chatterbox: missing t3_cfg.safetensors" in message and "Fix:" in message
    assert "scripts/download_weights.py --variant chatterbox" in message
    assert "Traceback" not in result.stderr


def test_make_random_checkpoint_writes_a_loadable_directory(tmp_path: Path) -> None:
    out = tmp_path / "turbo"
    result = run(
        "scripts/make_random_checkpoint.py", "--variant", "chatterbox-turbo", "--size", "tiny",
        str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    marker = json.loads((out / "random_weights.json").read_text())
    assert marker["random_weights"] is True and marker["variant"] == "chatterbox-turbo"
    assert not [p for p in tmp_path.iterdir() if p.name != "turbo"], "no staging dir left"


def test_bench_compares_both_paths_on_the_same_tokens(english_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = run(
        "scripts/bench.py", "--model-path", str(english_dir), "--tokens", "40", "--runs", "1",
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["upstream_s3gen_tokens"] == [40]
    assert report["ours_streaming"]["audio_s"] == report["upstream_non_streaming"]["audio_s"] == 1.6
    assert report["ratios"]["ours_ttfa_over_ours_total"] < 1.0


def test_bench_runs_nano_against_upstreams_turbo_path(
    checkpoints: Checkpoints, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    result = run(
        "scripts/bench.py", "--model-path", str(checkpoints(Variant.NANO)), "--tokens", "40",
        "--runs", "1", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["upstream_s3gen_tokens"] == [40]
    # Turbo's three trailing silence tokens on both sides: 43 tokens of 40 ms.
    audio = report["ours_streaming"]["audio_s"], report["upstream_non_streaming"]["audio_s"]
    assert audio == (1.72, 1.72)


def test_the_concurrency_bench_sweeps_levels_and_reports_ratios(
    english_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "concurrency.json"
    result = run(
        "scripts/bench_concurrency.py", "--model-path", str(english_dir), "--streams", "1,3",
        "--tokens", "20", "--runs", "1", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert [level["streams"] for level in report["levels"]] == [1, 3]
    assert all(level["every_stream_complete"] for level in report["levels"])
    # Figures, not goals: beside other work 3 streams can make fewer tokens a second than 1.
    assert all(level["t3_tokens_per_s"] > 0 for level in report["levels"])
    assert set(report["ratios_to_one_stream"]["3"]) == {"x_real_time", "first_audio_p50",
                                                        "t3_tokens_per_s"}  # fmt: skip


def test_a_bad_setting_names_the_variable(tmp_path: Path) -> None:
    out = str(tmp_path / "x.wav")
    result = run(
        "-m", "worker.synthesize", "--text", "Hi.", "--out", out, TTS_AUDIO_TOKENS_PER_SLICE="lots"
    )  # fmt: skip
    assert result.returncode == 2
    assert "TTS_AUDIO_TOKENS_PER_SLICE" in result.stderr and "Traceback" not in result.stderr


def test_the_master_and_light_modules_do_not_import_torch() -> None:
    # The master process (all of app/) starts in a second: it never loads torch or chatterbox.
    code = (
        "import sys; import common.settings, common.params, worker.engine.text.chunking, "
        "worker.engine.text.feed, common.variants, common.protocol, app.main, "
        "app.__main__; bad = {'torch', 'chatterbox'} & set(sys.modules); "
        "assert not bad, f'{bad} imported'"
    )
    result = run("-c", code, timeout=60)
    assert result.returncode == 0, result.stderr


def test_weights_are_found_in_the_hugging_face_cache(english_dir: Path, tmp_path: Path) -> None:
    # The Hub layout snapshot_download leaves behind: refs/main names a snapshot of the files.
    repo = tmp_path / "hf" / "hub" / "models--ResembleAI--chatterbox"
    snapshot = repo / "snapshots" / "0123456789abcdef"
    snapshot.mkdir(parents=True)
    for item in english_dir.iterdir():
        (snapshot / item.name).symlink_to(item)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123456789abcdef")
    code = (
        "from worker.engine.model.loading import load_model; "
        "m = load_model(None, device='cpu'); print(m.checkpoint_dir, m.weights)"
    )
    result = run("-c", code, HF_HOME=str(tmp_path / "hf"), MODEL_PATH="")
    assert result.returncode == 0, result.stderr
    assert str(snapshot) in result.stdout and "random weights" in result.stdout
