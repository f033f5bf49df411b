"""`make bench-gpu`'s sweep (scripts/bench_gpu.py) runs end to end on a CPU, on tiny checkpoints,
and the Makefile's recipe names only options the script takes: the one GPU call must not be the
first time either is tried."""

from __future__ import annotations

import json
import shlex
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

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench_gpu() -> ModuleType:
    sys.path.insert(0, str(REPO / "scripts"))
    import bench_gpu

    return bench_gpu


@pytest.mark.timeout(90)
def test_the_sweep_runs_on_a_cpu_and_reports_every_figure(
    bench_gpu: ModuleType, checkpoints: Checkpoints, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "bench_gpu.json"
    argv = [
        "--device", "cpu", "--dtype", "float32",
        "--checkpoint", f"chatterbox={checkpoints(Variant.ENGLISH)}",
        "--checkpoint", f"chatterbox-turbo={checkpoints(Variant.TURBO)}",
        "--streams", "2", "--tokens", "8", "--warmup-tokens", "8", "--count-tokens", "8",
        "--graphs", "off", "--out", str(out),
    ]  # fmt: skip
    bench_gpu.main(argv)
    result = json.loads(out.read_text())
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
    assert result["skipped"] == [] and result["checkpoints_written_s"] == {}
    table = capsys.readouterr().out.split("\n\n")[-1]
    assert table.count("\n| base | off | 2 |") == 1 and table.count("\n| Turbo | off | 2 |") == 1


def test_cuda_syncs_are_credited_to_the_call_whose_thread_made_them(
    bench_gpu: ModuleType, monkeypatch: pytest.MonkeyPatch
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


def test_the_budget_skips_what_would_not_end_in_time(bench_gpu: ModuleType) -> None:
    budget = bench_gpu.Budget(100.0)
    assert budget.refuses(64) is None  # nothing measured yet: no estimate
    budget.ran(1, 10.0)
    budget.started -= 50.0
    assert budget.refuses(1) is None  # 50 s + 10 s
    assert "budget" in budget.refuses(16)  # 50 s + 16 x 10 s
    budget.ran(16, 20.0)
    assert budget.refuses(16) is None  # measured: 20 s, not the estimate


def test_make_bench_gpu_passes_options_the_script_takes(bench_gpu: ModuleType) -> None:
    dry = subprocess.run(
        ["make", "-n", "bench-gpu"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.replace("\\\n", " ")
    line = next(line for line in dry.splitlines() if "scripts/bench_gpu.py" in line)
    words = shlex.split(line)
    args = bench_gpu.parse_args(words[words.index("scripts/bench_gpu.py") + 1 :])
    assert args.device == "cuda" and args.dtype == "bfloat16"
    assert [variant for variant, _ in args.models] == [Variant.ENGLISH, Variant.TURBO]
    assert args.levels == [1, 16, 64] and args.graph_settings == [True, False]
