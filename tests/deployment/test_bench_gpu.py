"""`make bench-gpu`'s sweep runs end to end on a CPU through the very command the GPU machine
runs (scripts/bench_gpu.py, tiny checkpoints, tiny levels), keeps its JSON and log when killed
mid-level, and the Makefile's recipe names only options the script takes: the one GPU call must
not be the first time any of it is tried."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import torch

from common.variants import Variant
from tests.support.checkpoints import Checkpoints
from worker.engine.transfer_count import TransferCounter

REPO = Path(__file__).resolve().parents[2]
TINY_LEVEL = ["--device", "cpu", "--dtype", "float32", "--tokens", "8", "--count-tokens", "8",
              "--graphs", "off"]  # fmt: skip


@pytest.fixture(scope="module")
def scripts() -> ModuleType:
    sys.path.insert(0, str(REPO / "scripts"))
    import bench_gpu

    return bench_gpu


def command(out: Path, *argv: str) -> list[str]:
    return [sys.executable, str(REPO / "scripts" / "bench_gpu.py"), *TINY_LEVEL, *argv,
            "--out", str(out)]  # fmt: skip


@pytest.mark.timeout(150)
def test_the_sweep_runs_on_a_cpu_and_writes_every_figure(
    scripts: ModuleType, checkpoints: Checkpoints, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The command's main in this process (its imports are this process's already); the test
    below runs the command itself."""
    argv = command(
        tmp_path, "--checkpoint", f"chatterbox={checkpoints(Variant.ENGLISH)}",
        "--checkpoint", f"chatterbox-turbo={checkpoints(Variant.TURBO)}", "--streams", "2",
    )  # fmt: skip
    scripts.main(argv[2:], tee=False)
    result = json.loads((tmp_path / "bench_gpu.json").read_text())
    assert result["partial"] is False and result["stage"] == "done"
    rows = result["results"]
    assert [(r["model"], r["streams"]) for r in rows] == [("base", 2), ("Turbo", 2)]
    for row in rows:
        assert row["every_stream_complete"], row  # Turbo's closing silence counted too
        assert row["t3_batch"] == row["streams"], row
        assert row["t3_step_ms_p50"] > 0 and row["s3gen_batch_ms_p50"] > 0, row
        assert row["t3_syncs_per_step_p50"] is not None, row  # counted on the CPU's terms
        assert row["s3gen_syncs_per_batch_max"] is not None, row
        assert 0 < row["first_audio_p50_s"] <= row["first_audio_p95_s"], row
        assert row["x_real_time"] > 0, row
        assert row["captured_while_timed"] == 0 and row["graphs_fell_back"] == [], row
        assert {"t3_graphs", "s3gen_graphs"} <= row.keys(), row
    assert result["skipped"] == [] and result["checkpoints_written_s"] == {}
    table = (tmp_path / "bench_gpu.md").read_text()
    assert table.count("\n| base | off | 2 |") == 1 and table.count("\n| Turbo | off | 2 |") == 1
    assert table in capsys.readouterr().out


@pytest.mark.timeout(240)
def test_a_run_killed_mid_level_leaves_the_levels_it_finished(
    checkpoints: Checkpoints, tmp_path: Path
) -> None:
    """Killed (SIGKILL, as a device call's limit kills) once the first level is on disk: the
    JSON is whole, says where the run was, and the log holds what was printed."""
    argv = command(tmp_path, "--checkpoint", f"chatterbox={checkpoints(Variant.ENGLISH)}",
                   "--streams", "1,2,2")  # fmt: skip
    run = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    json_file = tmp_path / "bench_gpu.json"
    try:
        deadline = time.monotonic() + 200  # imports under load on 2 cores: up to a minute
        while time.monotonic() < deadline and run.poll() is None:
            if json_file.exists() and json.loads(json_file.read_text())["results"]:
                break
            time.sleep(0.05)
        assert run.poll() is None, "the run ended before it could be killed"
        os.kill(run.pid, signal.SIGKILL)
    finally:
        run.kill()
        run.wait()
    time.sleep(0.5)  # tee writes what it was given, then sees the end of its input
    result = json.loads(json_file.read_text())
    assert result["partial"] is True
    assert [r["streams"] for r in result["results"]] == [1]
    assert result["stage"].startswith("base, graphs False")
    log = (tmp_path / "bench_gpu.log").read_text()
    assert '"streams": 1' in log and "bench_gpu: done" not in log
    # A kill may land between a rewrite and its rename: at most that one temporary file is left,
    # and the JSON read above is the last whole one.
    assert {p.name for p in tmp_path.glob(".*.tmp")} <= {".bench_gpu.json.tmp"}


def test_cuda_syncs_are_credited_to_the_call_whose_thread_made_them(
    scripts: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CUDA counting path without a GPU: torch's sync warnings, as sync debug mode raises
    them, from the two loops' threads at once and from the event loop's."""
    import call_probe

    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", lambda mode: None)
    sync = call_probe.SYNC_WARNING + " (Triggered internally at CUDAFunctions.cpp:1)"

    def syncing(count: int, result: Any) -> Any:
        def call(_: Any) -> Any:
            for _ in range(count):
                warnings.warn(sync, UserWarning, stacklevel=1)
                time.sleep(0.001)  # the other thread's warnings come in between
            return result

        return call

    t3 = SimpleNamespace(step=syncing(2, SimpleNamespace(tokens={0: 1})))
    s3gen = SimpleNamespace(decode=syncing(30, []))
    engine = SimpleNamespace(
        model=SimpleNamespace(device=torch.device("cuda")),
        t3=SimpleNamespace(runner=t3), s3gen=SimpleNamespace(runner=s3gen),
    )  # fmt: skip
    probe = call_probe.CallProbe(engine)  # type: ignore[arg-type]
    with ThreadPoolExecutor(1) as t3_loop, ThreadPoolExecutor(1) as s3gen_loop:
        with probe.count_syncs():
            steps = [t3_loop.submit(t3.step, SimpleNamespace(prefill=())) for _ in range(5)]
            batches = [s3gen_loop.submit(s3gen.decode, [None] * 4) for _ in range(2)]
            warnings.warn(sync, UserWarning, stacklevel=1)  # the event loop's
            for future in steps + batches:
                future.result()
        with pytest.warns(UserWarning, match="not a sync"):  # other warnings still show
            warnings.warn("not a sync", UserWarning, stacklevel=1)
    steps_seen, batches_seen, outside = probe.take()
    assert [(c.batch, c.syncs) for c in steps_seen] == [(1, 2)] * 5
    assert [(c.batch, c.syncs) for c in batches_seen] == [(4, 30)] * 2
    assert outside == 1


def test_the_strict_cpu_count_sees_the_syncs_hidden_inside_operators() -> None:
    """istft's window check (``aten.equal``), a 0-dim tensor from Python data, boolean
    indexing: each a sync on a GPU, counted strictly only."""
    spectrum = torch.randn(1, 9, 20, dtype=torch.complex64)
    window = torch.hann_window(16)
    x = torch.arange(6.0)
    for strict, expected in ((False, 0), (True, 3)):
        with TransferCounter(strict=strict) as count:
            torch.istft(spectrum, 16, 4, 16, window=window)
            torch.tensor(0)
            x[x > 2]
        assert count.syncs == expected, count.calls


def test_the_budget_scales_a_timed_pass_not_a_cold_one(scripts: ModuleType) -> None:
    import bench_gpu_sweep

    budget = bench_gpu_sweep.Budget(100.0)
    assert budget.refuses(64) is None  # nothing measured yet: no estimate
    budget.ran(1, timed_s=5.0)  # whatever the level took cold, its timed pass took 5 s
    budget.started -= 50.0
    assert budget.refuses(1) is None  # 50 s + 3 passes x 5 s
    assert budget.refuses(4) is None  # 50 + 15 x sqrt(4) = 80 s
    assert "budget" in budget.refuses(16)  # 50 + 15 x 4 = 110 s
    budget.ran(16, timed_s=8.0)
    assert budget.refuses(16) is None  # measured: 3 x 8 s, not the estimate


def test_make_bench_gpu_runs_the_documented_command(scripts: ModuleType, tmp_path: Path) -> None:
    (tmp_path / ".whl").mkdir()
    dry = subprocess.run(
        ["make", "-n", "bench-gpu"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.replace("\\\n", " ")
    line = next(line for line in dry.splitlines() if "scripts/bench_gpu.py" in line)
    words = shlex.split(line)
    args = scripts.parse_args(words[words.index("scripts/bench_gpu.py") + 1 :])
    assert args.device == "cuda" and args.dtype == "bfloat16" and args.out.name == "bench_gpu"
    assert [variant for variant, _ in args.models] == ["chatterbox", "chatterbox-turbo"]
    assert all(directory.is_absolute() for _, directory in args.models)
    assert args.levels == [1, 16, 64] and args.graph_settings == [True, False]
