"""How many requests a worker takes: its slots, from its device."""

from __future__ import annotations

from common.settings import Settings
from common.variants import Variant
from tests.support.checkpoints import Checkpoints
from worker.capacity import (
    CPU_SLOTS,
    GIB,
    MARGIN_BYTES,
    MAX_SLOTS,
    S3GEN_BYTES_PER_WINDOW,
    choose_slots,
    slots_that_fit,
)
from worker.engine.loading import LoadedModel, load_model
from worker.engine.t3_runner import T3Runner, kv_bytes_per_slot


def test_slots_are_what_fits_beside_s3gen_and_a_margin() -> None:
    per_slot = 240 * 2**20
    free = 20 * GIB
    expected = (free - 16 * S3GEN_BYTES_PER_WINDOW - MARGIN_BYTES) // per_slot
    assert slots_that_fit(free, per_slot, windows=16) == expected == 64
    assert slots_that_fit(GIB, per_slot, windows=16) == 1  # never none
    assert slots_that_fit(10_000 * GIB, per_slot, windows=16) == MAX_SLOTS


def test_the_setting_wins_and_a_cpu_gets_its_measured_default(english_model: LoadedModel) -> None:
    assert choose_slots(3, english_model, 1024, 16) == 3
    assert choose_slots(None, english_model, 1024, 16) == CPU_SLOTS


def test_the_kv_cache_per_slot_is_what_the_runner_allocates(checkpoints: Checkpoints) -> None:
    for variant in Variant:
        model = load_model(checkpoints(variant), device="cpu")
        runner = T3Runner(model, slots=2, context=256)
        assert runner.cache.bytes == 2 * kv_bytes_per_slot(model, 256)


def test_auto_means_the_worker_decides() -> None:
    settings = Settings(_env_file=None, concurrent_requests_per_worker="auto")  # type: ignore[call-arg]
    assert settings.concurrent_requests_per_worker is None
    assert Settings(_env_file=None).concurrent_requests_per_worker is None  # type: ignore[call-arg]
